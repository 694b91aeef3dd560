// HoistfsMounts: the hoistfs mounts one test makes, remembered so TearDown can undo them all.
//
//   harness::HoistfsMounts mounts_{HOISTFS_BINARY};
//   CommandResult r = mounts_.Mount(image, mp, cache, {"-o", "prefetch=none"});
//   Status u = mounts_.Unmount(mp);   // fusermount3 -u, then waits for the mount and daemon
//   mounts_.UnmountAll();             // in TearDown
//
// Mount runs `[wrapper...] hoistfs --cache CACHE [extra...] IMAGE MP` (hoistfs returns once the
// mount is ready, or with -f once it is unmounted) and returns what happened as a
// CommandResult (RunForResult), for the test to assert on. Track remembers a mount point that
// was mounted another way (mount(8), `hoist mount`) so UnmountAll undoes it too.
//
// Unmount reads the daemon's and its supervisor's pids from the mount's state file, runs
// `fusermount3 -u MP` (if that fails: a lazy `fusermount3 -u -z MP` so nothing is left behind, and
// an error quoting fusermount3), then waits until MP has left the mount table and the daemon has
// exited (its final state-file write done). It waits on those conditions, never on a fixed sleep,
// with a generous deadline (harness::kGenerousDeadline); past it: an error naming what is left.
// Thread-safety: one test thread.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/harness/subprocess.h"

namespace hoist::harness {

// How HoistfsMounts::Mount runs hoistfs.
struct HoistfsCommand {
  // Run hoistfs under these (e.g. {"time", "-f", "%M", "-o", FILE} for its peak RSS).
  std::vector<std::string> wrapper;
  std::chrono::seconds timeout{180};
};

class HoistfsMounts {
 public:
  explicit HoistfsMounts(std::string hoistfs_binary) : binary_(std::move(hoistfs_binary)) {}

  CommandResult Mount(const std::string& image, const std::string& mp, const std::string& cache,
                      const std::vector<std::string>& extra = {},
                      const HoistfsCommand& command = {});
  void Track(const std::string& mp);
  [[nodiscard]] Status Unmount(const std::string& mp);
  // Unmounts every remembered mount point that is still mounted (errors ignored: teardown).
  void UnmountAll();

 private:
  std::string binary_;
  std::vector<std::string> mount_points_;
};

}  // namespace hoist::harness
