// runtime_spec.h: user resolution through the image's passwd/group, docker's command and env
// rules, and the config.json a bundle gets (parsed back and checked field by field).
#include "tools/runtime/runtime_spec.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

namespace hoist {
namespace {

const std::optional<std::string> kPasswd =
    "# comment\n"
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "broken:x:notanumber:1:::\n"
    "short:x:5\n"
    "svc:x:999:999::/var/lib/svc:/bin/false\r\n"
    "nohome:x:1001:1001:::/bin/sh\n";
const std::optional<std::string> kGroup =
    "root:x:0:\n"
    "app:x:1000:\n"
    "staff:x:50:app,svc\n"
    "docker:x:60:svc,app\n"
    "dup:x:50:app\n"
    "wheel:x:10:root\n"
    "svc:x:999:\n";

TEST(ParsePasswd, SkipsCommentsAndMalformedLines) {
  auto users = ParsePasswd(*kPasswd);
  ASSERT_EQ(users.size(), 4u);
  EXPECT_EQ(users[0].name, "root");
  EXPECT_EQ(users[1].uid, 1000u);
  EXPECT_EQ(users[1].home, "/home/app");
  EXPECT_EQ(users[2].name, "svc");
  EXPECT_EQ(users[2].home, "/var/lib/svc");  // CRLF tolerated
  EXPECT_EQ(users[3].home, "");
}

TEST(ParseGroup, Members) {
  auto groups = ParseGroup(*kGroup);
  ASSERT_EQ(groups.size(), 7u);
  EXPECT_EQ(groups[2].name, "staff");
  EXPECT_EQ(groups[2].members, (std::vector<std::string>{"app", "svc"}));
  EXPECT_TRUE(groups[0].members.empty());
}

TEST(ResolveExecUser, EmptyIsRoot) {
  auto u = ResolveExecUser("", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value()) << u.error().message();
  EXPECT_EQ(*u, (ExecUser{0, 0, {10}, "/root"}));
}

TEST(ResolveExecUser, NameGetsPrimaryGroupAndMemberships) {
  auto u = ResolveExecUser("app", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value()) << u.error().message();
  // staff (50) and docker (60), in file order; "dup" repeats gid 50 and is dropped.
  EXPECT_EQ(*u, (ExecUser{1000, 1000, {50, 60}, "/home/app"}));
}

TEST(ResolveExecUser, NumericUid) {
  auto u = ResolveExecUser("999", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{999, 999, {50, 60}, "/var/lib/svc"}));
  // Unknown to passwd: gid 0, HOME /, no groups.
  u = ResolveExecUser("4242", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{4242, 0, {}, "/"}));
  // And without any passwd file.
  u = ResolveExecUser("4242", std::nullopt, std::nullopt);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{4242, 0, {}, "/"}));
}

TEST(ResolveExecUser, ExplicitGroupDropsSupplementaryGroups) {
  auto u = ResolveExecUser("app:staff", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{1000, 50, {}, "/home/app"}));
  u = ResolveExecUser("1000:7", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{1000, 7, {}, "/home/app"}));
  u = ResolveExecUser("0:wheel", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, (ExecUser{0, 10, {}, "/root"}));
}

TEST(ResolveExecUser, EmptyHomeBecomesRoot) {
  auto u = ResolveExecUser("nohome", kPasswd, kGroup);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->home, "/");
}

TEST(ResolveExecUser, Errors) {
  auto u = ResolveExecUser("nobody", kPasswd, kGroup);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code(), ENOENT);
  EXPECT_EQ(u.error().message(), "user \"nobody\" is not in the image's /etc/passwd");
  u = ResolveExecUser("app", std::nullopt, kGroup);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code(), ENOENT);
  EXPECT_EQ(u.error().message(),
            "user \"app\": the image has no /etc/passwd to look the name up in");
  u = ResolveExecUser("app:nogroup", kPasswd, kGroup);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code(), ENOENT);
  EXPECT_EQ(u.error().message(), "group \"nogroup\" is not in the image's /etc/group");
  u = ResolveExecUser("app:staff", kPasswd, std::nullopt);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code(), ENOENT);
  for (const char* bad : {"app:", ":staff", "4294967295", "99999999999", "1:4294967295"}) {
    u = ResolveExecUser(bad, kPasswd, kGroup);
    ASSERT_FALSE(u.has_value()) << bad;
    EXPECT_EQ(u.error().code(), EINVAL) << bad;
  }
}

TEST(ContainerArgs, DockerRules) {
  const std::vector<std::string> ep = {"/entry", "-x"};
  const std::vector<std::string> cmd = {"serve", "--port=1"};
  using V = std::vector<std::string>;
  EXPECT_EQ(*ContainerArgs(ep, cmd, std::nullopt, {}), (V{"/entry", "-x", "serve", "--port=1"}));
  EXPECT_EQ(*ContainerArgs(ep, cmd, std::nullopt, {"sh"}), (V{"/entry", "-x", "sh"}));
  EXPECT_EQ(*ContainerArgs({}, cmd, std::nullopt, {"sh", "-c", "x"}), (V{"sh", "-c", "x"}));
  // --entrypoint replaces the entrypoint and drops the image's Cmd.
  EXPECT_EQ(*ContainerArgs(ep, cmd, V{"/bin/sh"}, {}), (V{"/bin/sh"}));
  EXPECT_EQ(*ContainerArgs(ep, cmd, V{"/bin/sh"}, {"-c", "y"}), (V{"/bin/sh", "-c", "y"}));
  EXPECT_EQ(*ContainerArgs(ep, cmd, V{}, {"true"}), (V{"true"}));
  auto none = ContainerArgs({}, {}, std::nullopt, {});
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), EINVAL);
  EXPECT_EQ(none.error().message(),
            "the image has no command (its Entrypoint and Cmd are empty) and none was given");
  EXPECT_FALSE(ContainerArgs(ep, cmd, V{}, {}).has_value());
  EXPECT_FALSE(ContainerArgs({}, {""}, std::nullopt, {}).has_value());
}

TEST(ContainerEnv, OverridesAndDefaults) {
  ExecUser user{1000, 1000, {}, "/home/app"};
  using V = std::vector<std::string>;
  EXPECT_EQ(ContainerEnv({"A=1", "PATH=/bin"}, {"A=2", "B=3"}, user, false),
            (V{"A=2", "PATH=/bin", "B=3", "HOME=/home/app"}));
  EXPECT_EQ(ContainerEnv({"HOME=/x"}, {}, user, true),
            (V{"HOME=/x", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "TERM=xterm"}));
}

TEST(RuntimeSpecJson, Fields) {
  RuntimeSpecOptions o;
  o.args = {"python3", "-c", "print(40+2)"};
  o.env = {"PATH=/bin", "HOME=/home/app"};
  o.cwd = "/work";
  o.user = {1000, 1000, {50, 60}, "/home/app"};
  o.hostname = "box";
  o.readonly_root = true;
  o.annotations = {{"org.example.k", "v"}};
  o.nofile_soft = 1024;
  o.nofile_hard = 20000;
  const std::string text = RuntimeSpecJson(o);
  ASSERT_TRUE(text.ends_with("}\n"));
  rapidjson::Document d;
  d.Parse(text.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_STREQ(d["ociVersion"].GetString(), "1.0.2");
  const auto& p = d["process"];
  EXPECT_FALSE(p["terminal"].GetBool());
  EXPECT_EQ(p["user"]["uid"].GetUint(), 1000u);
  EXPECT_EQ(p["user"]["gid"].GetUint(), 1000u);
  ASSERT_EQ(p["user"]["additionalGids"].Size(), 2u);
  EXPECT_EQ(p["user"]["additionalGids"][1].GetUint(), 60u);
  ASSERT_EQ(p["args"].Size(), 3u);
  EXPECT_STREQ(p["args"][2].GetString(), "print(40+2)");
  EXPECT_STREQ(p["cwd"].GetString(), "/work");
  EXPECT_FALSE(p["noNewPrivileges"].GetBool());
  // Non-root: the bounding set only.
  EXPECT_EQ(p["capabilities"]["bounding"].Size(), DefaultCapabilities().size());
  EXPECT_EQ(p["capabilities"]["effective"].Size(), 0u);
  EXPECT_EQ(p["capabilities"]["permitted"].Size(), 0u);
  EXPECT_FALSE(p["capabilities"].HasMember("ambient"));
  EXPECT_STREQ(p["rlimits"][0]["type"].GetString(), "RLIMIT_NOFILE");
  EXPECT_EQ(p["rlimits"][0]["hard"].GetUint64(), 20000u);
  EXPECT_EQ(p["rlimits"][0]["soft"].GetUint64(), 1024u);
  EXPECT_STREQ(d["root"]["path"].GetString(), "rootfs");
  EXPECT_TRUE(d["root"]["readonly"].GetBool());
  EXPECT_STREQ(d["hostname"].GetString(), "box");
  EXPECT_STREQ(d["annotations"]["org.example.k"].GetString(), "v");
  std::vector<std::string> dests;
  for (const auto& m : d["mounts"].GetArray()) dests.push_back(m["destination"].GetString());
  EXPECT_EQ(dests, RuntimeSpecMountDestinations());
  EXPECT_EQ(dests, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                             "/sys"}));
  const auto& lx = d["linux"];
  EXPECT_FALSE(lx.HasMember("resources"));
  EXPECT_FALSE(lx.HasMember("cgroupsPath"));
  std::vector<std::string> ns;
  for (const auto& n : lx["namespaces"].GetArray()) ns.push_back(n["type"].GetString());
  EXPECT_EQ(ns, (std::vector<std::string>{"pid", "ipc", "uts", "mount"}));
}

TEST(RuntimeSpecJson, RootAndIsolatedNetwork) {
  RuntimeSpecOptions o;
  o.args = {"sh"};
  o.terminal = true;
  o.readonly_root = false;
  o.isolated_network = true;
  rapidjson::Document d;
  d.Parse(RuntimeSpecJson(o).c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_TRUE(d["process"]["terminal"].GetBool());
  EXPECT_FALSE(d["process"]["user"].HasMember("additionalGids"));
  EXPECT_EQ(d["process"]["capabilities"]["effective"].Size(), DefaultCapabilities().size());
  EXPECT_FALSE(d["root"]["readonly"].GetBool());
  EXPECT_FALSE(d.HasMember("annotations"));
  const auto& ns = d["linux"]["namespaces"];
  ASSERT_EQ(ns.Size(), 5u);
  EXPECT_STREQ(ns[4]["type"].GetString(), "network");
}

}  // namespace
}  // namespace hoist
