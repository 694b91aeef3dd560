#include "tests/harness/containerd.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "base/file_util.h"

namespace hoist::harness {

Result<std::unique_ptr<PrivateContainerd>> PrivateContainerd::Start(
    const std::string& dir, const PrivateContainerdOptions& options) {
  HOIST_RETURN_IF_ERROR(RequirePrograms({"containerd", "ctr"}));
  auto cd = std::unique_ptr<PrivateContainerd>(new PrivateContainerd());
  cd->dir_ = dir;
  cd->socket_ = dir + "/state/containerd.sock";
  cd->snapshotter_ = options.snapshotter;
  const std::string config = "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir +
                             "/state\"\n"
                             "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
                             "[grpc]\n  address = \"" +
                             cd->socket_ + "\"\n[ttrpc]\n  address = \"" + cd->socket_ +
                             ".ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n" +
                             options.extra_config;
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
  // Newest first: a mount made later may sit on top of an earlier one.
  for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
    auto r = RunCommand({"ctr", "-a", socket_, "image", "unmount", "--rm", *it},
                        {.timeout = std::chrono::seconds(30)});
    if (!r || !r->ok()) (void)::umount2(it->c_str(), MNT_DETACH);
  }
  child_.Terminate();
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
