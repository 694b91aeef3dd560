// Prometheus metrics (issue 18) from the REAL daemons: hoistfs (-o metrics=ADDR), hoist-snapshotter
// and hoist-store (--metrics-address ADDR), scraped with the real curl during their life and
// checked with the real `promtool check metrics` (Debian's prometheus package). Runs as root.
//
//   HoistfsScrapeMatchesTheRegistryLog  a cold mount of a two-layer gzip image, metrics on a unix
//                                 socket: scrapes right after the mount and after reading every
//                                 file pass promtool; the per-host request and byte counters equal
//                                 what the registry's access log says it served (every request; the
//                                 bytes of every 2xx response), the fetch histogram counts every
//                                 request, FUSE reads and lookups were timed, cache hits/misses
//                                 equal `hoist stats`, image/local bytes and the quota are exact;
//                                 the socket is gone after the unmount.
//   HoistfsTcpAddressAndRefusals   a non-loopback or malformed address is one line and exit 1
//                                 with nothing mounted; a loopback TCP port serves GET (200),
//                                 refuses POST (405) and another path (404); a second mount on
//                                 the same port fails with one line naming the address.
//   SnapshotterServesMetrics       hoist-snapshotter (supervised worker) with the real layer
//                                 store: the scrape passes promtool and reports its one mount;
//                                 a non-loopback address is refused before anything starts.
//   StoreServesMetrics             hoist-store: the scrape passes promtool and reports its mount.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/registry_image_suite.h"
#include "tests/harness/registry_requests.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"

#if !defined(HOISTFS_BINARY) || !defined(SNAPSHOTTER_BINARY) || !defined(HOIST_STORE_BINARY)
#error "HOISTFS_BINARY, SNAPSHOTTER_BINARY and HOIST_STORE_BINARY must name the daemons"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;
using harness::RegistryRequest;
using harness::RunHoist;

const std::string kLoopbackRule =
    " is not a loopback address (metrics are served only on 127.0.0.0/8, [::1], localhost or "
    "unix:PATH)";

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// GET /metrics with curl; nullopt unless curl exits 0 with a 2xx.
std::optional<std::string> Scrape(const std::vector<std::string>& curl_args) {
  std::vector<std::string> argv = {"curl", "-sS", "--fail", "--max-time", "20"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  CommandResult r = harness::RunForResult(argv);
  if (!r.ok()) return std::nullopt;
  return r.stdout_text;
}
std::optional<std::string> ScrapeUnix(const std::string& socket) {
  return Scrape({"--unix-socket", socket, "http://localhost/metrics"});
}

// `promtool check metrics` on the text: "" if it passes, else what it said.
std::string Promtool(const std::string& text) {
  harness::CommandOptions o;
  o.stdin_data = text;
  CommandResult r = harness::RunForResult({"promtool", "check", "metrics"}, o);
  if (r.ok()) return "";
  return r.Describe() + ": " + r.stdout_text + r.stderr_text;
}

// The value of the sample whose name and labels are exactly `series` (`name` or
// `name{a="b",...}`), or nullopt if the text has no such line.
std::optional<double> Sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while (at < text.size()) {
    const size_t eol = text.find('\n', at);
    const std::string line =
        text.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
    at = eol == std::string::npos ? text.size() : eol + 1;
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      double v = 0;
      const char* begin = line.data() + series.size() + 1;
      auto [p, ec] = std::from_chars(begin, line.data() + line.size(), v);
      if (ec != std::errc() || p != line.data() + line.size()) return std::nullopt;
      return v;
    }
  }
  return std::nullopt;
}

uint16_t FreeLoopbackPort() {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 0;
  socklen_t len = sizeof(a);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

class MetricsTest : public harness::RegistryImageSuite<MetricsTest> {
 protected:
  static void SetUpTestSuite() {
    (void)SetUpSuite({
        .root_message = "the metrics tests must run as root",
        .programs = {"skopeo", "fusermount3", "docker-registry", "curl", "promtool", "umount"},
        .work_template = "/tmp/hoist-metrics-XXXXXX",
        .layers =
            {
                LayerSpec{FileSpec::BigFile("a/big", 3 << 20, 41),
                          FileSpec::File("a/small", "a\n")},
                LayerSpec{FileSpec::BigFile("b/big", 1 << 20, 42),
                          FileSpec::File("b/small", "bb\n")},
            },
        .repo = "metrics/gz",
    });
  }

  void TearDown() override { mounts_.UnmountAll(); }

  // The requests the registry completed since `mark`, up to a request of our own sent now
  // (the test's own requests left out).
  std::vector<RegistryRequest> RequestsSince(uint64_t mark) {
    auto settled =
        harness::RequestsUpToSentinel(*registry_, mark, "sentinel-" + std::to_string(counter_++));
    EXPECT_TRUE(settled.has_value()) << settled.error().message();
    return settled ? std::move(*settled) : std::vector<RegistryRequest>{};
  }

  static std::string Describe(const std::vector<RegistryRequest>& requests) {
    return harness::DescribeRequests(requests);
  }

  // What the registry's access log (combined format: every request it answered, with status
  // and body bytes sent) holds from line `first` on, the test's own sentinel requests left out:
  // the number of requests and the body bytes of the 2xx ones.
  struct Served {
    uint64_t requests = 0;
    uint64_t ok_bytes = 0;
    std::string lines;
  };
  static Served AccessLogFrom(size_t first) {
    Served out;
    auto lines = registry_->AccessLogLines();
    EXPECT_TRUE(lines.has_value());
    if (!lines) return out;
    for (size_t i = first; i < lines->size(); ++i) {
      const std::string& line = (*lines)[i];
      if (line.find("/v2/?sentinel-") != std::string::npos) continue;
      // ... "GET /v2/... HTTP/1.1" 206 1049059 "" "agent"
      const size_t q = line.find("\" ");
      if (q == std::string::npos) continue;
      ++out.requests;
      out.lines += line + "\n";
      const int status = std::atoi(line.c_str() + q + 2);
      const size_t sp = line.find(' ', q + 2);
      const uint64_t bytes =
          sp == std::string::npos ? 0 : std::strtoull(line.c_str() + sp + 1, nullptr, 10);
      if (status >= 200 && status < 300) out.ok_bytes += bytes;
    }
    return out;
  }

  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

TEST_F(MetricsTest, HoistfsScrapeMatchesTheRegistryLog) {
  const std::string mp = NewDir("mp"), cache = NewDir("cache");
  const std::string sock = NewDir("sock") + "/metrics.sock";
  const std::string host = "host=\"" + registry_->host_port() + "\"";
  const uint64_t mark = registry_->LogMark();
  auto before = registry_->AccessLogLines();
  ASSERT_TRUE(before.has_value());
  const size_t first_line = before->size();
  CommandResult m = mounts_.Mount(
      Ref(), mp, cache,
      {"-o", "prefetch=none,elf_prefetch=0,dir_prefetch=0,cache_size=1g,metrics=unix:" + sock});
  ASSERT_TRUE(m.ok()) << m.stderr_text;

  // During the mount's life, before any file is read.
  std::optional<std::string> early = ScrapeUnix(sock);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(Promtool(*early), "") << *early;
  EXPECT_EQ(Sample(*early, "hoist_mounts"), 1.0) << *early;
  EXPECT_EQ(Sample(*early, "hoist_layers"), 2.0) << *early;
  EXPECT_EQ(Sample(*early, "hoist_cache_quota_bytes"), 1073741824.0) << *early;
  EXPECT_GE(Sample(*early, "hoist_fetch_requests_total{" + host + "}").value_or(0), 1.0) << *early;

  const std::vector<std::pair<std::string, std::string>> files = {
      {"a/big", harness::PatternBytes(41, 0, 3 << 20)},
      {"a/small", "a\n"},
      {"b/big", harness::PatternBytes(42, 0, 1 << 20)},
      {"b/small", "bb\n"}};
  uint64_t image_bytes = 0;
  for (const auto& [path, want] : files) {
    auto got = ReadFile(mp + "/" + path);
    ASSERT_TRUE(got.has_value()) << path << ": " << got.error().message();
    EXPECT_TRUE(*got == want) << path;
    image_bytes += want.size();
  }

  // The counters equal the registry's access log: every request it answered since the mount
  // began, and the body bytes of its 2xx responses. (Waited for: the last response may still
  // be counted by the daemon when the registry has logged it, or the reverse.)
  std::string text;
  Served served;
  const bool matched = harness::WaitUntil(
      [&] {
        served = AccessLogFrom(first_line);
        auto scraped = ScrapeUnix(sock);
        if (!scraped) return false;
        text = *scraped;
        return Sample(text, "hoist_fetch_requests_total{" + host + "}") ==
                   static_cast<double>(served.requests) &&
               Sample(text, "hoist_fetch_bytes_total{" + host + "}") ==
                   static_cast<double>(served.ok_bytes);
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(200));
  EXPECT_TRUE(matched) << "registry: " << served.requests << " requests, " << served.ok_bytes
                       << " bytes:\n"
                       << served.lines << "scrape:\n"
                       << text;
  const std::vector<RegistryRequest> sent = RequestsSince(mark);
  EXPECT_EQ(Promtool(text), "") << text;
  // Both layer blobs were fetched (the gzip layers are indexed from their whole stream).
  uint64_t blob_bytes = 0;
  for (const RegistryRequest& r : sent) {
    if (r.IsBlobGet()) blob_bytes += r.bytes_written;
  }
  EXPECT_GE(blob_bytes, image_->layers[0].size + image_->layers[1].size);
  EXPECT_GE(Sample(text, "hoist_fetch_bytes_total{" + host + "}").value_or(0),
            static_cast<double>(blob_bytes));
  // One latency observation per request.
  EXPECT_EQ(Sample(text, "hoist_fetch_duration_seconds_count{" + host + "}"),
            static_cast<double>(served.requests));
  EXPECT_EQ(Sample(text, "hoist_fetch_duration_seconds_bucket{" + host + ",le=\"+Inf\"}"),
            static_cast<double>(served.requests));
  EXPECT_EQ(Sample(text, "hoist_fetch_errors_total{" + host + ",kind=\"network\"}"), std::nullopt);
  // FUSE operations were timed.
  EXPECT_GE(Sample(text, "hoist_fuse_operation_duration_seconds_count{op=\"read\"}").value_or(0),
            4.0)
      << text;
  EXPECT_GE(Sample(text, "hoist_fuse_operation_duration_seconds_count{op=\"lookup\"}").value_or(0),
            4.0)
      << text;
  EXPECT_EQ(Sample(text, "hoist_errors_total{kind=\"read_error\"}"), 0.0);
  EXPECT_EQ(Sample(text, "hoist_errors_total{kind=\"timeout\"}"), 0.0);
  EXPECT_EQ(Sample(text, "hoist_prefetch_state{state=\"none\"}"), 1.0) << text;

  // Cache hits/misses and the image's bytes agree with `hoist stats` (the state file is written
  // every second: waited for).
  MountStateFile state;
  const bool agreed = harness::WaitUntil(
      [&] {
        CommandResult r = RunHoist({"stats", "--json", mp});
        if (!r.ok()) return false;
        auto s = MountStateFromJson(r.stdout_text);
        if (!s) return false;
        state = *s;
        auto scraped = ScrapeUnix(sock);
        if (!scraped) return false;
        text = *scraped;
        return state.stats.local_bytes == state.stats.image_bytes &&
               Sample(text, "hoist_cache_hits_total") ==
                   static_cast<double>(state.stats.cache_hits) &&
               Sample(text, "hoist_cache_misses_total") ==
                   static_cast<double>(state.stats.cache_misses) &&
               Sample(text, "hoist_local_bytes") == static_cast<double>(state.stats.local_bytes);
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(200));
  EXPECT_TRUE(agreed) << MountStatsToJson(state.stats) << "\n" << text;
  EXPECT_EQ(Sample(text, "hoist_image_bytes"), static_cast<double>(image_bytes));
  EXPECT_EQ(Sample(text, "hoist_local_bytes"), static_cast<double>(image_bytes));

  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
  EXPECT_TRUE(harness::WaitUntil([&] { return !Exists(sock); })) << sock;
}

TEST_F(MetricsTest, HoistfsTcpAddressAndRefusals) {
  const std::string mp = NewDir("mp"), cache = NewDir("cache");
  for (const auto& [address, message] : std::vector<std::pair<std::string, std::string>>{
           {"0.0.0.0:9108", "0.0.0.0" + kLoopbackRule},
           {"192.0.2.1:9108", "192.0.2.1" + kLoopbackRule},
           {"unix:rel.sock", "unix: needs an absolute socket path"},
           {"127.0.0.1", "expected HOST:PORT, [::1]:PORT or unix:PATH"}}) {
    CommandResult r = mounts_.Mount(Ref(), mp, cache, {"-o", "metrics=" + address});
    EXPECT_EQ(r.exit_code, 1) << address;
    EXPECT_EQ(r.stderr_text, "hoistfs: metrics address \"" + address + "\": " + message + "\n");
    EXPECT_FALSE(harness::IsMounted(mp));
  }

  const uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  CommandResult m = mounts_.Mount(Ref(), mp, cache, {"-o", "prefetch=none,metrics=" + address});
  ASSERT_TRUE(m.ok()) << m.stderr_text;
  const std::string url = "http://" + address;
  std::optional<std::string> text = Scrape({url + "/metrics"});
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(Promtool(*text), "") << *text;
  EXPECT_EQ(Sample(*text, "hoist_mounts"), 1.0);
  CommandResult post = harness::RunForResult(
      {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url + "/metrics"});
  EXPECT_EQ(post.stdout_text, "405");
  CommandResult other =
      harness::RunForResult({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url + "/"});
  EXPECT_EQ(other.stdout_text, "404");

  // The port is taken: a second mount says so and does not mount.
  const std::string mp2 = NewDir("mp");
  CommandResult second = mounts_.Mount(Ref(), mp2, cache, {"-o", "metrics=" + address});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(second.stderr_text,
            "hoistfs: metrics address " + address + ": bind: Address already in use\n");
  EXPECT_FALSE(harness::IsMounted(mp2));
}

TEST_F(MetricsTest, SnapshotterServesMetrics) {
  const std::string dir = NewDir("snap");
  const std::string sock = dir + "/sn.sock", msock = dir + "/metrics.sock";
  CommandResult bad = harness::RunForResult({SNAPSHOTTER_BINARY, "--address", sock, "--root",
                                             dir + "/root", "--metrics-address", "8.8.8.8:1"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.stderr_text,
            "hoist-snapshotter: metrics address \"8.8.8.8:1\": 8.8.8.8" + kLoopbackRule + "\n");
  EXPECT_FALSE(Exists(dir + "/root"));

  harness::ChildProcess::Options o;
  o.stdout_path = dir + "/sn.log";
  o.stderr_path = dir + "/sn.log";
  auto child = harness::ChildProcess::Start(
      {SNAPSHOTTER_BINARY, "--address", sock, "--root", dir + "/root", "--prefetch", "none",
       "--insecure-registry", registry_->host_port(), "--metrics-address", "unix:" + msock},
      o);
  ASSERT_TRUE(child.has_value()) << child.error().message();
  std::string text;
  const bool served = harness::WaitUntil(
      [&] {
        auto s = ScrapeUnix(msock);
        if (!s) return false;
        text = *s;
        return Sample(text, "hoist_mounts") == 1.0;  // the layer store is mounted
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(50));
  EXPECT_TRUE(served) << text << ReadFile(dir + "/sn.log").value_or("");
  EXPECT_EQ(Promtool(text), "") << text;
  EXPECT_EQ(Sample(text, "hoist_layers"), 0.0);
  EXPECT_NE(text.find("# TYPE hoist_fuse_operation_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE hoist_fetch_requests_total counter\n"), std::string::npos);
  child->Terminate();
  EXPECT_TRUE(harness::WaitUntil([&] { return !harness::IsMounted(dir + "/root/layers"); }));
}

TEST_F(MetricsTest, StoreServesMetrics) {
  const std::string dir = NewDir("store");
  const std::string msock = dir + "/metrics.sock", mp = dir + "/store";
  ASSERT_TRUE(MakeDirs(mp).has_value());
  CommandResult bad = harness::RunForResult(
      {HOIST_STORE_BINARY, "--metrics-address", "[::]:9", "--cache", dir + "/cache", mp});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.stderr_text, "hoist-store: metrics address \"[::]:9\": ::" + kLoopbackRule + "\n");

  CommandResult started = harness::RunForResult(
      {HOIST_STORE_BINARY, "--cache", dir + "/cache", "--metrics-address", "unix:" + msock, "-o",
       "prefetch=none,log_level=info,log_file=" + dir + "/store.log", mp});
  ASSERT_TRUE(started.ok()) << started.stderr_text;
  std::optional<std::string> text = ScrapeUnix(msock);
  ASSERT_TRUE(text.has_value()) << ReadFile(dir + "/store.log").value_or("");
  EXPECT_EQ(Promtool(*text), "") << *text;
  EXPECT_EQ(Sample(*text, "hoist_mounts"), 1.0) << *text;
  EXPECT_EQ(Sample(*text, "hoist_layers"), 0.0) << *text;
  // An unmount from outside ends the daemon, which unmounts its layer views and stops serving.
  EXPECT_TRUE(harness::RunForResult({"umount", mp}).ok());
  EXPECT_TRUE(harness::WaitUntil([&] { return !harness::IsMounted(mp + ".layers"); }));
  EXPECT_TRUE(harness::WaitUntil([&] { return !Exists(msock); }));
}

}  // namespace
}  // namespace hoist
