#include "tests/harness/hoistfs_mounts.h"

#include <chrono>
#include <thread>

#include "tests/harness/mountinfo.h"

namespace hoist::harness {

CommandResult HoistfsMounts::Mount(const std::string& image, const std::string& mp,
                                   const std::string& cache,
                                   const std::vector<std::string>& extra) {
  mount_points_.push_back(mp);
  std::vector<std::string> argv = {binary_, "--cache", cache};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(image);
  argv.push_back(mp);
  return RunForResult(argv, {.timeout = std::chrono::seconds(180)});
}

CommandResult HoistfsMounts::Unmount(const std::string& mp) {
  CommandResult r = RunForResult({"fusermount3", "-u", mp});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (r.ok() && IsMounted(mp) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return r;
}

void HoistfsMounts::UnmountAll() {
  for (const std::string& mp : mount_points_) {
    if (IsMounted(mp)) (void)RunForResult({"fusermount3", "-u", mp});
  }
}

}  // namespace hoist::harness
