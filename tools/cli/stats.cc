// hoist stats MOUNTPOINT [--json]: a mount's counters from its state file (stats_file.h). The
// mountpoint itself is never stat'ed or read (a hung mount must not hang this tool): only its
// parent directory is canonicalised.
#include <cstdio>
#include <memory>
#include <string>

#include "base/file_util.h"
#include "base/process.h"
#include "fusefs/mount.h"
#include "fusefs/stats_file.h"
#include "tools/cli/verbs.h"

namespace hoist {
namespace {

struct StatsArgs {
  std::string mountpoint;
  bool json = false;
  std::string state_dir;
};

int RunStats(const StatsArgs& a) {
  auto canonical = CanonicalMountpointNoFollow(a.mountpoint);
  if (!canonical) return ReportError("stats", canonical.error().message());
  const std::string dir = a.state_dir.empty() ? DefaultStateDir() : a.state_dir;
  const std::string path = StateFileForCanonicalMountpoint(*canonical, dir);
  auto raw = ReadFile(path);
  if (!raw) {
    return ReportError("stats", "no hoist mount state for " + *canonical + " (" + path + ")");
  }
  auto state = MountStateFromJson(*raw);
  if (!state) return ReportError("stats", path + ": " + state.error().message());
  if (a.json) {
    std::fputs(raw->c_str(), stdout);
    if (raw->empty() || raw->back() != '\n') std::fputs("\n", stdout);
    return 0;
  }
  const MountStatsSnapshot& s = state->stats;
  std::printf("mountpoint        %s%s\n", state->mountpoint.c_str(),
              ProcessAlive(state->pid) ? "" : "  (not mounted: last state of the ended daemon)");
  std::printf("image             %s\n", state->image.c_str());
  std::printf("pid               %lld\n", static_cast<long long>(state->pid));
  std::printf("requests          %llu\n", static_cast<unsigned long long>(s.requests));
  std::printf("bytes fetched     %llu (from the registry)\n",
              static_cast<unsigned long long>(s.bytes_fetched));
  std::printf("store reads       %llu requests, %llu bytes (local blob files, no network)\n",
              static_cast<unsigned long long>(s.store_requests),
              static_cast<unsigned long long>(s.store_bytes));
  std::printf("prefetch          %llu requests, %llu bytes (%s)\n",
              static_cast<unsigned long long>(s.prefetch_requests),
              static_cast<unsigned long long>(s.prefetch_bytes), s.prefetch_state.c_str());
  std::printf("cache hits/misses %llu / %llu\n", static_cast<unsigned long long>(s.cache_hits),
              static_cast<unsigned long long>(s.cache_misses));
  std::printf("fetch latency     p50 %llu us, p99 %llu us\n",
              static_cast<unsigned long long>(s.latency_p50_us),
              static_cast<unsigned long long>(s.latency_p99_us));
  std::printf("local             %.1f%% of %llu bytes\n", 100.0 * s.LocalShare(),
              static_cast<unsigned long long>(s.image_bytes));
  std::printf("errors            %llu (timeouts %llu, digest mismatches %llu)\n",
              static_cast<unsigned long long>(s.errors),
              static_cast<unsigned long long>(s.timeouts),
              static_cast<unsigned long long>(s.digest_mismatches));
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerStatsSnapshot& l = s.layers[i];
    const std::string label =
        "layer " + std::to_string(i + 1) + "/" + std::to_string(s.layers.size());
    std::printf(
        "%-17s %s: fetched %llu bytes in %llu requests, %llu bytes from the store, "
        "local %.1f%% of %llu bytes\n",
        label.c_str(), l.digest.str().c_str(), static_cast<unsigned long long>(l.bytes_fetched),
        static_cast<unsigned long long>(l.requests), static_cast<unsigned long long>(l.store_bytes),
        100.0 * l.LocalShare(), static_cast<unsigned long long>(l.image_bytes));
  }
  return 0;
}

}  // namespace

void RegisterStats(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* sub = app.add_subcommand("stats", "Show a mount's counters (from its state file)");
  sub->add_option("MOUNTPOINT", args->mountpoint, "The mountpoint")->required();
  sub->add_flag("--json", args->json, "Print the state file's JSON");
  sub->add_option("--state-dir", args->state_dir, "State directory (default /run/hoist for root)");
  sub->callback([args, run] { *run = [args] { return RunStats(*args); }; });
}

}  // namespace hoist
