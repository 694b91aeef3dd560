#include "tests/harness/containerd.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "base/file_util.h"
#include "base/mountinfo.h"

namespace hoist::harness {
namespace {

// The CRI plugin's section of config.toml (see the header).
std::string CriConfig(const std::string& dir, const PrivateContainerdCriOptions& o) {
  const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
  std::string c =
      cri + "]\n  sandbox_image = \"" + o.sandbox_image +
      "\"\n  restrict_oom_score_adj = true\n"
      "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n" +
      cri + ".containerd]\n  snapshotter = \"" + o.snapshotter +
      "\"\n  disable_snapshot_annotations = false\n  default_runtime_name = \"runc\"\n" + cri +
      ".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n" + cri +
      ".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n" + cri +
      ".cni]\n  bin_dir = \"" + dir + "/cni-bin\"\n  conf_dir = \"" + dir + "/cni-conf\"\n";
  for (const std::string& r : o.plain_http_registries) {
    c += cri + ".registry.mirrors.\"" + r + "\"]\n  endpoint = [\"http://" + r + "\"]\n";
  }
  return c;
}

}  // namespace

Result<std::unique_ptr<PrivateContainerd>> PrivateContainerd::Start(
    const std::string& dir, const PrivateContainerdOptions& options) {
  HOIST_RETURN_IF_ERROR(RequirePrograms({"containerd", "ctr"}));
  auto cd = std::unique_ptr<PrivateContainerd>(new PrivateContainerd());
  cd->dir_ = dir;
  cd->socket_ = dir + "/state/containerd.sock";
  cd->snapshotter_ = options.snapshotter;
  cd->cri_ = options.cri.enabled;
  if (cd->cri_) HOIST_RETURN_IF_ERROR(RequirePrograms({"runc", "containerd-shim-runc-v2"}));
  const std::string config =
      "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\n" +
      (cd->cri_ ? std::string() : "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n") +
      "[grpc]\n  address = \"" + cd->socket_ + "\"\n[ttrpc]\n  address = \"" + cd->socket_ +
      ".ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n" + options.extra_config +
      (cd->cri_ ? CriConfig(dir, options.cri) : std::string());
  if (cd->cri_) {
    for (const char* d : {"/cni-bin", "/cni-conf"}) HOIST_RETURN_IF_ERROR(MakeDirs(dir + d));
  }
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.toml", config));
  ChildProcess::Options opts;
  opts.stdout_path = dir + "/containerd.log";
  opts.stderr_path = dir + "/containerd.log";
  HOIST_ASSIGN_OR_RETURN(
      cd->child_, ChildProcess::Start({"containerd", "--config", dir + "/config.toml"}, opts));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    struct stat st;
    if (::stat(cd->socket_.c_str(), &st) == 0) {
      auto v =
          RunCommand({"ctr", "-a", cd->socket_, "version"}, {.timeout = std::chrono::seconds(10)});
      if (v && v->ok()) break;
    }
    if (!cd->child_.Running()) {
      return Fail(EIO, "containerd exited during start; see " + dir + "/containerd.log");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail(ETIMEDOUT,
                  "containerd did not answer within 30 s; see " + dir + "/containerd.log");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cd;
}

PrivateContainerd::~PrivateContainerd() {
  if (cri_ && child_.Running()) {
    // What a failed test left running: kill and delete the tasks (their shims exit then).
    auto tasks = RunCommand({"ctr", "-a", socket_, "-n", "k8s.io", "tasks", "ls", "-q"},
                            {.timeout = std::chrono::seconds(30)});
    if (tasks && tasks->ok()) {
      std::string id;
      for (char c : tasks->stdout_text + "\n") {
        if (c != '\n') {
          id += c;
          continue;
        }
        if (id.empty()) continue;
        (void)RunCommand(
            {"ctr", "-a", socket_, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id},
            {.timeout = std::chrono::seconds(30)});
        (void)RunCommand({"ctr", "-a", socket_, "-n", "k8s.io", "tasks", "rm", "-f", id},
                         {.timeout = std::chrono::seconds(30)});
        id.clear();
      }
    }
  }
  // Newest first: a mount made later may sit on top of an earlier one.
  for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
    auto r = RunCommand({"ctr", "-a", socket_, "image", "unmount", "--rm", *it},
                        {.timeout = std::chrono::seconds(30)});
    if (!r || !r->ok()) (void)::umount2(it->c_str(), MNT_DETACH);
  }
  child_.Terminate();
  if (cri_) {
    // A pod's shm and a container's rootfs stay mounted when containerd stops without removing
    // them.
    auto mounts = MountPointsUnder(dir_);
    if (mounts) {
      for (auto it = mounts->rbegin(); it != mounts->rend(); ++it) {
        (void)::umount2(it->c_str(), MNT_DETACH);
      }
    }
  }
}

Result<std::string> PrivateContainerd::Ctr(const std::vector<std::string>& args,
                                           std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"ctr", "-a", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChecked(argv, {.timeout = timeout});
}

Status PrivateContainerd::Pull(const std::string& ref, bool plain_http) {
  std::vector<std::string> args = {"image", "pull"};
  if (!snapshotter_.empty()) args.push_back("--snapshotter=" + snapshotter_);
  if (plain_http) args.push_back("--plain-http");
  args.push_back(ref);
  HOIST_RETURN_IF_ERROR(Ctr(args));
  return Ok();
}

Status PrivateContainerd::Mount(const std::string& ref, const std::string& target) {
  HOIST_RETURN_IF_ERROR(Ctr({"image", "mount", ref, target}));
  mounted_.push_back(target);
  return Ok();
}

Status PrivateContainerd::Unmount(const std::string& target) {
  HOIST_RETURN_IF_ERROR(Ctr({"image", "unmount", "--rm", target}));
  mounted_.erase(std::remove(mounted_.begin(), mounted_.end(), target), mounted_.end());
  return Ok();
}

}  // namespace hoist::harness
