// HoistfsMounts: the hoistfs mounts one test makes, remembered so TearDown can undo them all.
//
//   harness::HoistfsMounts mounts_{HOISTFS_BINARY};
//   CommandResult r = mounts_.Mount(image, mp, cache, {"-o", "prefetch=none"});
//   CommandResult u = mounts_.Unmount(mp);   // fusermount3 -u, then waits until it is gone
//   mounts_.UnmountAll();                    // in TearDown
//
// Mount runs `hoistfs --cache CACHE [extra...] IMAGE MP` (hoistfs returns once the mount is
// ready). Unmount waits on the mount table, at most 5 s, never on a fixed sleep. Failures come
// back as CommandResults (RunForResult), for the test to assert on.
// Thread-safety: one test thread.
#pragma once

#include <string>
#include <vector>

#include "tests/harness/subprocess.h"

namespace hoist::harness {

class HoistfsMounts {
 public:
  explicit HoistfsMounts(std::string hoistfs_binary) : binary_(std::move(hoistfs_binary)) {}

  CommandResult Mount(const std::string& image, const std::string& mp, const std::string& cache,
                      const std::vector<std::string>& extra = {});
  CommandResult Unmount(const std::string& mp);
  // Unmounts every mount point Mount was given that is still mounted (errors ignored: teardown).
  void UnmountAll();

 private:
  std::string binary_;
  std::vector<std::string> mount_points_;
};

}  // namespace hoist::harness
