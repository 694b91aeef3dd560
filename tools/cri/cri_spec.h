// The pod sandbox and container configs hoist-cri sends, as plain structs parsed from JSON
// (rapidjson); no gRPC or protobuf here, so unit tests and fuzzers link it alone.
//
// JSON keys are the CRI's own field names in snake_case (as in crictl's config files), for the
// subset tools/cri/proto/cri_subset.proto carries:
//   pod:       {"metadata": {"name", "uid", "namespace", "attempt"}, "hostname", "log_directory",
//               "labels": {..}, "annotations": {..},
//               "linux": {"cgroup_parent", "security_context": {"namespace_options":
//                 {"network", "pid", "ipc"}, "privileged", "run_as_user", "readonly_rootfs"}}}
//   container: {"metadata": {"name", "attempt"}, "image": {"image"} or "image": "REF",
//               "command": [..], "args": [..], "working_dir", "envs": [{"key", "value"}],
//               "labels", "annotations", "log_path",
//               "linux": {"security_context": {"namespace_options": {..}, "privileged",
//                 "run_as_user", "readonly_rootfs"}}}
// A namespace mode is "POD", "CONTAINER", "NODE" or its number (0, 1, 2).
//
// Errors: EINVAL with one line naming the source and the field ("pod.json: metadata.name: must
// be a string"); an unknown field is an error (it would otherwise be silently ignored).
// Required: pod metadata.name, metadata.uid and metadata.namespace; container metadata.name and
// image. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace hoist::cri {

// CRI's NamespaceMode numbers.
enum class NamespaceMode : int { kPod = 0, kContainer = 1, kNode = 2 };

struct SecuritySpec {
  NamespaceMode network = NamespaceMode::kPod;
  NamespaceMode pid = NamespaceMode::kPod;
  NamespaceMode ipc = NamespaceMode::kPod;
  bool privileged = false;
  bool readonly_rootfs = false;
  std::optional<int64_t> run_as_user;
};

struct PodSpec {
  std::string name, uid, namespace_name;
  uint32_t attempt = 0;
  std::string hostname;
  std::string log_directory;
  std::map<std::string, std::string> labels, annotations;
  std::string cgroup_parent;
  SecuritySpec security;
};

struct ContainerSpec {
  std::string name;
  uint32_t attempt = 0;
  std::string image;
  std::vector<std::string> command, args;
  std::string working_dir;
  std::vector<std::pair<std::string, std::string>> envs;
  std::map<std::string, std::string> labels, annotations;
  std::string log_path;
  SecuritySpec security;
};

// `what` names the source in errors (e.g. the file name).
[[nodiscard]] Result<PodSpec> ParsePodSpec(std::string_view json, std::string_view what);
[[nodiscard]] Result<ContainerSpec> ParseContainerSpec(std::string_view json,
                                                       std::string_view what);

}  // namespace hoist::cri
