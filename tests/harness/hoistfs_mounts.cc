#include "tests/harness/hoistfs_mounts.h"

#include <algorithm>

#include "base/process.h"
#include "fusefs/stats_file.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/wait.h"

namespace hoist::harness {

CommandResult HoistfsMounts::Mount(const std::string& image, const std::string& mp,
                                   const std::string& cache, const std::vector<std::string>& extra,
                                   const HoistfsCommand& command) {
  Track(mp);
  std::vector<std::string> argv = command.wrapper;
  argv.insert(argv.end(), {binary_, "--cache", cache});
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(image);
  argv.push_back(mp);
  return RunForResult(argv, {.timeout = command.timeout});
}

void HoistfsMounts::Track(const std::string& mp) {
  if (std::find(mount_points_.begin(), mount_points_.end(), mp) == mount_points_.end()) {
    mount_points_.push_back(mp);
  }
}

Status HoistfsMounts::Unmount(const std::string& mp) {
  // Test mount points are made canonical (mkdtemp under /tmp); the path is not touched, which
  // could hang on a stuck daemon.
  int64_t pid = 0;
  int64_t supervisor = 0;
  if (auto state = ReadMountStateFile(StateFileForCanonicalMountpoint(mp, DefaultStateDir()))) {
    pid = state->pid;
    supervisor = state->supervisor_pid;
  }
  CommandResult r = RunForResult({"fusermount3", "-u", mp});
  if (!r.ok()) {
    (void)RunForResult({"fusermount3", "-u", "-z", mp});
    std::string err = r.stderr_text;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Fail(EIO, "fusermount3 -u " + mp + " failed (" + r.Describe() + "): " + err);
  }
  if (!WaitUntil([&] { return !IsMounted(mp); }, kGenerousDeadline,
                 std::chrono::milliseconds(10))) {
    return Fail(EBUSY, mp + " is still mounted after fusermount3 -u");
  }
  if (!WaitUntil([&] { return !ProcessAlive(pid); }, kGenerousDeadline,
                 std::chrono::milliseconds(10))) {
    return Fail(EBUSY,
                "hoistfs (pid " + std::to_string(pid) + ") still running after unmounting " + mp);
  }
  if (!WaitUntil([&] { return !ProcessAlive(supervisor); }, kGenerousDeadline,
                 std::chrono::milliseconds(10))) {
    return Fail(EBUSY, "the hoistfs supervisor (pid " + std::to_string(supervisor) +
                           ") still running after unmounting " + mp);
  }
  return Ok();
}

void HoistfsMounts::UnmountAll() {
  for (const std::string& mp : mount_points_) {
    if (IsMounted(mp)) (void)Unmount(mp);
  }
}

}  // namespace hoist::harness
