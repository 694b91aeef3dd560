// hoist-cri's config parsing (tools/cri/cri_spec.h): the fields of the CRI subset, exact
// one-line errors for bad input.
#include "tools/cri/cri_spec.h"

#include <gtest/gtest.h>

namespace hoist::cri {
namespace {

TEST(CriSpec, ParsesEveryPodField) {
  auto pod = ParsePodSpec(R"({
    "metadata": {"name": "p", "uid": "u", "namespace": "ns", "attempt": 3},
    "hostname": "h", "log_directory": "/var/log/pods/p",
    "labels": {"a": "1"}, "annotations": {"b": "2"},
    "linux": {"cgroup_parent": "/kubepods", "security_context": {
      "namespace_options": {"network": "NODE", "pid": 1, "ipc": "POD"},
      "privileged": true, "readonly_rootfs": true, "run_as_user": 1000}}})",
                          "pod.json");
  ASSERT_TRUE(pod.has_value()) << pod.error().message();
  EXPECT_EQ(pod->name, "p");
  EXPECT_EQ(pod->uid, "u");
  EXPECT_EQ(pod->namespace_name, "ns");
  EXPECT_EQ(pod->attempt, 3u);
  EXPECT_EQ(pod->hostname, "h");
  EXPECT_EQ(pod->log_directory, "/var/log/pods/p");
  EXPECT_EQ(pod->labels, (std::map<std::string, std::string>{{"a", "1"}}));
  EXPECT_EQ(pod->annotations, (std::map<std::string, std::string>{{"b", "2"}}));
  EXPECT_EQ(pod->cgroup_parent, "/kubepods");
  EXPECT_EQ(pod->security.network, NamespaceMode::kNode);
  EXPECT_EQ(pod->security.pid, NamespaceMode::kContainer);
  EXPECT_EQ(pod->security.ipc, NamespaceMode::kPod);
  EXPECT_TRUE(pod->security.privileged);
  EXPECT_TRUE(pod->security.readonly_rootfs);
  EXPECT_EQ(pod->security.run_as_user, 1000);
}

TEST(CriSpec, ParsesEveryContainerField) {
  auto c = ParseContainerSpec(R"({
    "metadata": {"name": "c", "attempt": 1}, "image": {"image": "r/i:v1"},
    "command": ["/bin/sh", "-c"], "args": ["echo hi"], "working_dir": "/w",
    "envs": [{"key": "A", "value": "1"}, {"key": "B", "value": ""}],
    "labels": {"l": "x"}, "annotations": {"n": "y"}, "log_path": "c.log",
    "linux": {"security_context": {"namespace_options": {"pid": "CONTAINER"},
      "privileged": false, "run_as_user": 0}}})",
                              "ctr.json");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->name, "c");
  EXPECT_EQ(c->attempt, 1u);
  EXPECT_EQ(c->image, "r/i:v1");
  EXPECT_EQ(c->command, (std::vector<std::string>{"/bin/sh", "-c"}));
  EXPECT_EQ(c->args, (std::vector<std::string>{"echo hi"}));
  EXPECT_EQ(c->working_dir, "/w");
  EXPECT_EQ(c->envs, (std::vector<std::pair<std::string, std::string>>{{"A", "1"}, {"B", ""}}));
  EXPECT_EQ(c->labels.at("l"), "x");
  EXPECT_EQ(c->annotations.at("n"), "y");
  EXPECT_EQ(c->log_path, "c.log");
  EXPECT_EQ(c->security.pid, NamespaceMode::kContainer);
  EXPECT_EQ(c->security.run_as_user, 0);
  auto short_form = ParseContainerSpec(R"({"metadata": {"name": "c"}, "image": "r/i"})", "x");
  ASSERT_TRUE(short_form.has_value()) << short_form.error().message();
  EXPECT_EQ(short_form->image, "r/i");
}

TEST(CriSpec, BadPodIsOneLineError) {
  const std::string ok_meta = R"("metadata": {"name": "p", "uid": "u", "namespace": "n"})";
  struct Case {
    std::string json, message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "pod.json: invalid JSON: The document is empty. at offset 0"},
           {"[]", "pod.json: the document: must be an object"},
           {"{\"metadata\": {\"name\": 7}}", "pod.json: metadata.name: must be a string"},
           {"{\"metadata\": {\"nam\": \"p\"}}", "pod.json: unknown field metadata.nam"},
           {"{" + ok_meta + "}", ""},
           {"{\"metadata\": {\"name\": \"p\", \"uid\": \"u\"}}",
            "pod.json: metadata.namespace: is required"},
           {"{\"metadata\": {\"uid\": \"u\", \"namespace\": \"n\"}}",
            "pod.json: metadata.name: is required"},
           {"{" + ok_meta + ", \"log_directory\": \"logs\"}",
            "pod.json: log_directory: must be an absolute path"},
           {"{" + ok_meta + ", \"metadata\": {\"attempt\": -1}}",
            "pod.json: metadata.attempt: must be an integer from 0 to 4294967295"},
           {"{" + ok_meta +
                ", \"linux\": {\"security_context\": {\"namespace_options\": {\"network\": "
                "\"HOST\"}}}}",
            "pod.json: linux.security_context.namespace_options.network: must be POD, "
            "CONTAINER or NODE"},
           {"{" + ok_meta + ", \"linux\": {\"security_context\": {\"privileged\": 1}}}",
            "pod.json: linux.security_context.privileged: must be true or false"},
           {"{" + ok_meta + ", \"labels\": {\"a\": 1}}",
            "pod.json: labels: must be an object of strings"},
           {"{" + ok_meta + ", \"linux\": 3}", "pod.json: linux: must be an object"},
       }) {
    auto r = ParsePodSpec(c.json, "pod.json");
    if (c.message.empty()) {
      EXPECT_TRUE(r.has_value()) << c.json << ": " << r.error().message();
      continue;
    }
    ASSERT_FALSE(r.has_value()) << c.json;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), c.message) << c.json;
  }
}

TEST(CriSpec, BadContainerIsOneLineError) {
  struct Case {
    std::string json, message;
  };
  for (const Case& c : std::vector<Case>{
           {"{\"image\": \"i\"}", "ctr.json: metadata.name: is required"},
           {"{\"metadata\": {\"name\": \"c\"}}", "ctr.json: image: is required"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": {\"img\": \"i\"}}",
            "ctr.json: unknown field image.img"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"command\": \"/bin/sh\"}",
            "ctr.json: command: must be an array of strings"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"args\": [1]}",
            "ctr.json: args: must be an array of strings"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"envs\": [{\"value\": \"v\"}]}",
            "ctr.json: envs[].key: is required"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"envs\": {\"A\": \"1\"}}",
            "ctr.json: envs: must be an array of {\"key\", \"value\"} objects"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"log_path\": \"/abs.log\"}",
            "ctr.json: log_path: must be relative to the pod's log_directory"},
           {"{\"metadata\": {\"name\": \"c\"}, \"image\": \"i\", \"linux\": "
            "{\"security_context\": {\"run_as_user\": \"root\"}}}",
            "ctr.json: linux.security_context.run_as_user: must be a 64-bit integer"},
       }) {
    auto r = ParseContainerSpec(c.json, "ctr.json");
    ASSERT_FALSE(r.has_value()) << c.json;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), c.message) << c.json;
  }
}

}  // namespace
}  // namespace hoist::cri
