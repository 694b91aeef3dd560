// The mount's state file: where `hoist stats MOUNTPOINT` finds a mount's counters without
// touching the mount itself (a stat or read inside a hung mount would hang the tool).
//
// Location: <state dir>/mounts/<first 32 hex of sha256(canonical mountpoint)>.json, where the
// state dir is /run/hoist for root, else $XDG_RUNTIME_DIR/hoist, else /tmp/hoist-<uid>. The
// daemon computes the path once at start-up, before mounting (realpath of the mountpoint is
// safe then); `hoist stats` canonicalises the path it is given the same way.
//
// Content: MountStatsToJson members plus "mountpoint", "image", "pid", "supervisor_pid" (from
// $HOIST_SUPERVISOR_PID; 0 without a supervisor) and "updated_unix". It is
// written atomically (WriteFileAtomic: temp file + rename), so a reader sees a whole file.
//
// Thread-safety: free functions are thread-safe; StatsFileWriter owns one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "base/mutex.h"
#include "base/status.h"
#include "fusefs/mount_stats.h"

namespace hoist {

struct MountStateFile {
  std::string mountpoint;  // canonical
  std::string image;
  int64_t pid = 0;             // the process serving the mount (the worker)
  int64_t supervisor_pid = 0;  // its supervisor (tools/supervisor), 0 when there is none
  int64_t updated_unix = 0;
  MountStatsSnapshot stats;
};

// The state directory for this user: /run/hoist (euid 0), "$XDG_RUNTIME_DIR/hoist" if set,
// else "/tmp/hoist-<euid>". Inputs explicit for tests.
std::string DefaultStateDir(unsigned euid, std::string_view xdg_runtime_dir);
// The same from geteuid() and the environment.
std::string DefaultStateDir();

// <state_dir>/mounts/<hash>.json for an already canonical mountpoint path.
std::string StateFileForCanonicalMountpoint(std::string_view canonical_mountpoint,
                                            std::string_view state_dir);
// realpath(mountpoint), then the above. Errors: the errno of realpath (ENOENT, ...).
[[nodiscard]] Result<std::string> StateFileForMountpoint(const std::string& mountpoint,
                                                         std::string_view state_dir);

std::string MountStateToJson(const MountStateFile& state);
[[nodiscard]] Result<MountStateFile> MountStateFromJson(std::string_view json);

// Creates the directory (0755) if needed and writes the file atomically.
[[nodiscard]] Status WriteMountStateFile(const std::string& path, const MountStateFile& state);
// Errors: ENOENT (no such mount has written a state file), EINVAL for a malformed file.
[[nodiscard]] Result<MountStateFile> ReadMountStateFile(const std::string& path);

// Writes the state file once before the constructor returns, then every `interval` and once
// more on destruction (at unmount), from a thread of its own. `stats` must outlive the writer.
// Remove() deletes the file (call it after the final write when the mount goes away, if the file
// should not linger).
class StatsFileWriter {
 public:
  StatsFileWriter(const MountStats* stats, std::string path, std::string mountpoint,
                  std::string image, std::chrono::milliseconds interval);
  ~StatsFileWriter();  // final write, then stops
  StatsFileWriter(const StatsFileWriter&) = delete;
  StatsFileWriter& operator=(const StatsFileWriter&) = delete;

  Status WriteNow();
  // The process is handing the mount over to another one, which writes the file from now on:
  // no final write at destruction.
  void SkipFinalWrite() { skip_final_write_.store(true); }
  const std::string& path() const { return path_; }

 private:
  void Loop() HOIST_EXCLUDES(mu_);
  const MountStats* stats_;
  const std::string path_, mountpoint_, image_;
  const std::chrono::milliseconds interval_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  std::atomic<bool> skip_final_write_{false};
  const int64_t supervisor_pid_;  // before thread_: the thread reads it
  std::thread thread_;
};

}  // namespace hoist
