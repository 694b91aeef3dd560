// LinkSchedule (delay and bandwidth arithmetic) and wan_proxy's flag parsing: pure functions,
// no sockets.
#include <gtest/gtest.h>

#include "bench/wan_proxy/connection.h"
#include "bench/wan_proxy/link_schedule.h"
#include "bench/wan_proxy/options.h"

namespace hoist::wan {
namespace {

using namespace std::chrono_literals;
using Clock = LinkSchedule::Clock;

TEST(LinkScheduleTest, DelayOnlyDeliversEachChunkOneWayAfterItArrived) {
  LinkSchedule link(20ms, 0);
  const Clock::time_point t0{};
  EXPECT_EQ(link.Deliver(t0, 65536), t0 + 20ms);
  EXPECT_EQ(link.Deliver(t0 + 1ms, 65536), t0 + 21ms);
  EXPECT_EQ(link.Deliver(t0 + 1ms, 0), t0 + 21ms);  // EOF: not before the data ahead of it
}

TEST(LinkScheduleTest, RateSpacesChunksAndQueuesBehindTheWire) {
  LinkSchedule link(5ms, 1'000'000);  // 1 MB/s: 1000 bytes take 1 ms
  const Clock::time_point t0{};
  EXPECT_EQ(link.Deliver(t0, 1000), t0 + 1ms + 5ms);
  // Arrives while the wire is busy: waits for it.
  EXPECT_EQ(link.Deliver(t0, 1000), t0 + 2ms + 5ms);
  EXPECT_EQ(link.Deliver(t0 + 500us, 2000), t0 + 4ms + 5ms);
  // Arrives after the wire went idle: starts at once.
  EXPECT_EQ(link.Deliver(t0 + 10ms, 1000), t0 + 11ms + 5ms);
  EXPECT_EQ(link.Deliver(t0 + 10ms, 0), t0 + 11ms + 5ms);
}

TEST(LinkScheduleTest, WireTimeIsExactOverManySmallChunks) {
  LinkSchedule link(0ms, 3);  // 3 bytes/s: one byte is 333333333.33 ns
  const Clock::time_point t0{};
  Clock::time_point last;
  for (int i = 0; i < 300; ++i) last = link.Deliver(t0, 1);
  EXPECT_EQ(last, t0 + 100s);
}

TEST(LinkScheduleTest, NotBeforeHoldsTheFirstBytesBack) {
  LinkSchedule link(10ms, 0, Clock::time_point{} + 20ms);
  EXPECT_EQ(link.Deliver(Clock::time_point{} + 1ms, 10), Clock::time_point{} + 30ms);
  EXPECT_EQ(link.Deliver(Clock::time_point{} + 40ms, 10), Clock::time_point{} + 50ms);
}

TEST(WanProxyOptionsTest, Rates) {
  EXPECT_EQ(ParseRate("200mbit").value(), 25'000'000u);
  EXPECT_EQ(ParseRate("1gbit").value(), 125'000'000u);
  EXPECT_EQ(ParseRate("1Gbit").value(), 125'000'000u);
  EXPECT_EQ(ParseRate("1.5mbit").value(), 187'500u);
  EXPECT_EQ(ParseRate("800kbit").value(), 100'000u);
  EXPECT_EQ(ParseRate("10mbps").value(), 10'000'000u);
  EXPECT_EQ(ParseRate("0").value(), 0u);
  EXPECT_EQ(ParseRate("unlimited").value(), 0u);
  for (const char* bad :
       {"", "fast", "mbit", "-1mbit", "1 mbit", "0mbit", "1e3mbit", "infmbit", "10", "10mb"}) {
    const auto r = ParseRate(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), EINVAL) << bad;
  }
}

TEST(WanProxyOptionsTest, HostPorts) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:0")->host, "127.0.0.1");
  EXPECT_EQ(ParseHostPort("127.0.0.1:5000")->port, "5000");
  EXPECT_EQ(ParseHostPort("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseHostPort("localhost:65535")->port, "65535");
  for (const char* bad :
       {"127.0.0.1", ":80", "host:", "host:65536", "host:x", "[::1]80", "[::1]"}) {
    EXPECT_FALSE(ParseHostPort(bad).has_value()) << bad;
  }
}

TEST(WanProxyOptionsTest, FullCommandLine) {
  const auto o =
      ParseProxyOptions({"--listen", "127.0.0.1:0", "--upstream=127.0.0.1:5000", "--rtt-ms", "40",
                         "--rate", "200mbit", "--port-file", "/tmp/p", "--no-handshake"});
  ASSERT_TRUE(o.has_value()) << o.error().message();
  EXPECT_EQ(o->upstream.port, "5000");
  EXPECT_EQ(o->rtt, 40ms);
  EXPECT_EQ(o->bytes_per_second, 25'000'000u);
  EXPECT_EQ(o->port_file, "/tmp/p");
  EXPECT_FALSE(o->handshake);
  EXPECT_EQ(ParseProxyOptions({"--upstream", "h:1", "--rtt-ms", "0.5"})->rtt, 500us);
  EXPECT_TRUE(ParseProxyOptions({"--upstream", "h:1"})->handshake);
}

TEST(WanProxyOptionsTest, BadCommandLinesNameTheProblem) {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const Case cases[] = {
      {{}, "--upstream"},
      {{"--upstream", "h:0"}, "port 0"},
      {{"--upstream"}, "needs a value"},
      {{"--upstream", "h:1", "--rtt-ms", "soon"}, "--rtt-ms"},
      {{"--upstream", "h:1", "--rtt-ms", "-5"}, "--rtt-ms"},
      {{"--upstream", "h:1", "--rate", "fast"}, "--rate"},
      {{"--upstream", "h:1", "--listen", "nowhere"}, "--listen"},
      {{"--upstream", "h:1", "--frobnicate"}, "unknown argument"},
      {{"--upstream", "h:1", "--no-handshake=1"}, "no value"},
  };
  for (const Case& c : cases) {
    const auto o = ParseProxyOptions(c.args);
    ASSERT_FALSE(o.has_value()) << c.says;
    EXPECT_EQ(o.error().code(), EINVAL);
    EXPECT_NE(o.error().message().find(c.says), std::string::npos) << o.error().message();
  }
}

TEST(WanProxyOptionsTest, QueueLimitCoversTwiceTheBandwidthDelayProduct) {
  EXPECT_EQ(Connection::QueueLimit({40ms, 0, true}), 64u << 20);
  EXPECT_EQ(Connection::QueueLimit({1ms, 1000, true}), 1u << 20);
  // 200 Mbit/s x 40 ms = 1 MB; twice that plus four reads.
  EXPECT_EQ(Connection::QueueLimit({40ms, 25'000'000, true}), 2'000'000u + 4 * 65536u);
}

}  // namespace
}  // namespace hoist::wan
