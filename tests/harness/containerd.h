// A private containerd for tests: its own root, state and socket under a directory the test
// owns, the CRI plugin disabled, nothing shared with a system containerd. `ctr` talks to it with
// `-a socket()`. Images are pulled and unpacked into its overlayfs snapshotter (kernel overlayfs;
// root only) and can be mounted read-only-ish with `ctr image mount` for inspection.
//
//   auto cd = PrivateContainerd::Start(dir);                  // ~0.1-1 s
//   (*cd)->Pull("127.0.0.1:5000/src/img:v1", /*plain_http=*/true);
//   (*cd)->Mount("127.0.0.1:5000/src/img:v1", dir + "/mnt");  // ctr image mount
//   ... walk dir + "/mnt" ...
//   (*cd)->Unmount(dir + "/mnt");                             // ctr image unmount --rm
//
// Options: `extra_config` is appended to the generated config.toml (e.g. a proxy snapshot plugin:
// `[proxy_plugins.hoist]\n  type = "snapshot"\n  address = "/path/sock"\n`); `snapshotter`,
// when set, is passed as `--snapshotter` to Pull. (Mount cannot take one: ctr 1.6's
// `image mount` reads only a global --snapshotter that ctr does not have, so it always uses
// overlayfs; mount a snapshotter's view with `ctr snapshots view --target` instead.)
//
// CRI: with `cri.enabled` the CRI plugin runs too (runtime.v1 on socket(); images, pods and
// containers in the "k8s.io" namespace), configured for this machine: runc (io.containerd.runc.v2)
// with cgroupfs (SystemdCgroup = false), `restrict_oom_score_adj = true` (no CAP_SYS_RESOURCE),
// `cri.snapshotter` with `disable_snapshot_annotations = false` (the remote-snapshot labels),
// `cri.sandbox_image` as the pause image, empty CNI directories (pods must use the host
// network: NamespaceOption.network = NODE), the streaming server on a free 127.0.0.1 port, and
// each of `cri.plain_http_registries` ("host:port") reachable over plain HTTP as its own mirror.
//
// Lifetime: the destructor unmounts every target that Mount mounted and Unmount did not (with
// `ctr image unmount --rm`, falling back to a lazy umount2), then terminates containerd (SIGTERM,
// then SIGKILL) — also when the test failed halfway. With CRI it first kills and deletes every
// task left in "k8s.io" and lazily unmounts what containerd left mounted under `dir` (a pod's
// shm, a rootfs). It does not remove `dir`.
// Thread-safety: one thread at a time. Errors: the failing command's (EIO, ETIMEDOUT) with the
// last lines of its stderr; ENOENT when containerd or ctr is not installed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/harness/subprocess.h"

namespace hoist::harness {

struct PrivateContainerdCriOptions {
  bool enabled = false;
  std::string sandbox_image;  // "host:port/repo:tag"
  std::string snapshotter = "overlayfs";
  std::vector<std::string> plain_http_registries;
};

struct PrivateContainerdOptions {
  std::string extra_config;
  std::string snapshotter;
  PrivateContainerdCriOptions cri;
};

class PrivateContainerd {
 public:
  // REQUIRES: `dir` exists and is short enough for a unix socket path (< 80 bytes).
  // containerd's log goes to dir + "/containerd.log".
  [[nodiscard]] static Result<std::unique_ptr<PrivateContainerd>> Start(
      const std::string& dir, const PrivateContainerdOptions& options = {});

  ~PrivateContainerd();
  PrivateContainerd(const PrivateContainerd&) = delete;
  PrivateContainerd& operator=(const PrivateContainerd&) = delete;

  const std::string& socket() const { return socket_; }
  const std::string& dir() const { return dir_; }

  // `ctr -a socket() <args...>`; returns its stdout.
  [[nodiscard]] Result<std::string> Ctr(
      const std::vector<std::string>& args,
      std::chrono::milliseconds timeout = std::chrono::minutes(5));

  // `ctr image pull [--plain-http] REF`: fetches and unpacks into the overlayfs snapshotter.
  // REF is "host:port/repo:tag" (no transport prefix).
  [[nodiscard]] Status Pull(const std::string& ref, bool plain_http);

  // `ctr image mount REF TARGET` (TARGET must exist); remembered for the destructor.
  [[nodiscard]] Status Mount(const std::string& ref, const std::string& target);

  // `ctr image unmount --rm TARGET` (also removes the snapshot the mount made).
  [[nodiscard]] Status Unmount(const std::string& target);

 private:
  PrivateContainerd() = default;

  std::string dir_;
  std::string socket_;
  std::string snapshotter_;
  bool cri_ = false;
  ChildProcess child_;
  std::vector<std::string> mounted_;
};

}  // namespace hoist::harness
