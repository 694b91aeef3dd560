// A client of the Kubernetes CRI (runtime.v1 RuntimeService and ImageService) over a unix
// socket, for the verbs of hoist-cri: containerd's CRI plugin is the server it is tested with.
// The wire messages are tools/cri/proto/cri_subset.proto; this header exposes none of them.
//
//   auto c = cri::CriClient::Connect("/run/containerd/containerd.sock", 300s);
//   auto ref = (*c)->PullImage("registry:5000/img:v1", &pod);
//   auto pod_id = (*c)->RunPodSandbox(pod);
//   auto id = (*c)->CreateContainer(*pod_id, ctr, pod);
//   (*c)->StartContainer(*id); ... (*c)->ContainerStatus(*id) ...
//
// Errors: one line, "CRI <Method>: <gRPC code>: <server message>" with an errno for the code
// (ECONNREFUSED when the socket does not answer, ETIMEDOUT past the per-call timeout, ENOENT for
// NOT_FOUND, EINVAL for INVALID_ARGUMENT, EIO otherwise). Every call has the timeout given to
// Connect. Thread-safety: the calls may run concurrently (gRPC stubs are thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "tools/cri/cri_spec.h"

namespace hoist::cri {

struct VersionInfo {
  std::string version, runtime_name, runtime_version, runtime_api_version;
};

enum class ContainerState { kCreated, kRunning, kExited, kUnknown };
const char* ContainerStateName(ContainerState s);

struct ContainerInfo {
  std::string id, name, image, image_ref;
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at = 0, started_at = 0, finished_at = 0;  // ns since the epoch
  int32_t exit_code = 0;
  std::string reason, message, log_path;
};

class CriClient {
 public:
  // `address`: an absolute socket path, or "unix://" + path. Fails with ECONNREFUSED (naming the
  // socket) when nothing answers there within `timeout`.
  [[nodiscard]] static Result<std::unique_ptr<CriClient>> Connect(
      const std::string& address, std::chrono::milliseconds timeout);
  ~CriClient();

  [[nodiscard]] Result<VersionInfo> Version();
  // Returns the image reference the runtime resolved (an image ID for containerd). `pod` may be
  // null.
  [[nodiscard]] Result<std::string> PullImage(const std::string& image, const PodSpec* pod);
  // The image's ID, or ENOENT when the runtime does not have it.
  [[nodiscard]] Result<std::string> ImageId(const std::string& image);

  [[nodiscard]] Result<std::string> RunPodSandbox(const PodSpec& pod);
  [[nodiscard]] Status StopPodSandbox(const std::string& pod_id);
  [[nodiscard]] Status RemovePodSandbox(const std::string& pod_id);

  [[nodiscard]] Result<std::string> CreateContainer(const std::string& pod_id,
                                                    const ContainerSpec& container,
                                                    const PodSpec& pod);
  [[nodiscard]] Status StartContainer(const std::string& id);
  [[nodiscard]] Status StopContainer(const std::string& id, int64_t timeout_seconds);
  [[nodiscard]] Status RemoveContainer(const std::string& id);
  [[nodiscard]] Result<ContainerInfo> ContainerStatus(const std::string& id);

 private:
  struct Impl;
  explicit CriClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::cri
