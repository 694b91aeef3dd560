// The wan_proxy binary (bench/wan_proxy/wan_proxy.cc), measured: a real proxy process between
// this test and an in-test TCP echo server on loopback. What the benchmarks rely on: a small
// request/response costs at least the configured RTT (and a new connection one more, the
// handshake), a rate-capped transfer of N bytes takes at least N / rate, bytes arrive exact and
// in order, EOF arrives after all the data in both directions (half-close), SIGINT/SIGTERM stop
// it with exit 0, bad arguments exit 2 with one line. Timing: lower bounds from the emulated link
// plus generous upper bounds (a hung proxy fails; a loaded machine does not).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace hoist {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

ScopedFd ConnectLoopback(int port) {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  const int one = 1;
  (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // best effort
  // A hung proxy fails the test (reads and writes give EAGAIN) instead of hanging it.
  const timeval limit{60, 0};
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
  return fd;
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `size` bytes; fewer only at EOF or on an error.
std::string ReadExactly(int fd, size_t size) {
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, out.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

// Reads until EOF (or an error: then `error` is set).
std::string ReadToEof(int fd, int* error) {
  std::string out;
  std::vector<char> buf(1 << 16);
  *error = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = errno;
      break;
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  return out;
}

// A TCP echo server on 127.0.0.1: every connection gets back what it sends; at EOF the server
// records how many bytes it saw, then shuts its side down for writing and closes.
class EchoServer {
 public:
  EchoServer() {
    listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listener_.get(), 64), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~EchoServer() {
    ::shutdown(listener_.get(), SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    for (std::thread& t : sessions_) t.join();
  }
  int port() const { return port_; }
  // Bytes each finished connection received before its EOF, in the order they ended.
  std::vector<size_t> ReceivedBeforeEof() {
    MutexLock lock(mu_);
    return received_;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      sessions_.emplace_back([this, fd] { Echo(ScopedFd(fd)); });
    }
  }
  void Echo(ScopedFd fd) {
    std::vector<char> buf(1 << 16);
    size_t total = 0;
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // reset: nothing recorded
      if (n == 0) break;
      total += static_cast<size_t>(n);
      if (!SendAll(fd.get(), buf.data(), static_cast<size_t>(n))) return;
    }
    {
      MutexLock lock(mu_);
      received_.push_back(total);
    }
    ::shutdown(fd.get(), SHUT_WR);
  }

  ScopedFd listener_;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> sessions_;  // the acceptor's until it has returned
  Mutex mu_;
  std::vector<size_t> received_ HOIST_GUARDED_BY(mu_);
};

// A running wan_proxy in front of `upstream_port`, listening on a port it picked.
class Proxy {
 public:
  Proxy(int upstream_port, std::vector<std::string> link_args) {
    char tmpl[] = "/tmp/wan-proxy-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::vector<std::string> argv = {WAN_PROXY_BINARY,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--upstream",
                                     "127.0.0.1:" + std::to_string(upstream_port),
                                     "--port-file",
                                     dir_ + "/port"};
    argv.insert(argv.end(), link_args.begin(), link_args.end());
    harness::ChildProcess::Options options;
    options.stdout_path = dir_ + "/stdout";
    options.stderr_path = dir_ + "/stderr";
    auto child = harness::ChildProcess::Start(argv, options);
    EXPECT_TRUE(child.has_value()) << child.error().message();
    if (!child) return;
    child_ = std::move(*child);
    // The port file appears (renamed into place, whole) once the proxy accepts connections.
    EXPECT_TRUE(harness::WaitUntil(
        [&] { return std::filesystem::exists(dir_ + "/port") || !child_.Running(); }));
    const auto text = ReadFile(dir_ + "/port");
    EXPECT_TRUE(text.has_value()) << "no port file; stderr: " << Stderr();
    if (text) port_ = std::stoi(*text);
  }
  ~Proxy() {
    child_.Terminate();
    std::filesystem::remove_all(dir_);
  }
  int port() const { return port_; }
  harness::ChildProcess& child() { return child_; }
  std::string Stdout() const { return ReadFile(dir_ + "/stdout").value_or(""); }
  std::string Stderr() const { return ReadFile(dir_ + "/stderr").value_or(""); }

 private:
  std::string dir_;
  harness::ChildProcess child_;
  int port_ = 0;
};

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i + 8 <= size; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

// The offset of the first difference, or -1.
long FirstDifference(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<long>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<long>(n);
}

// Sends `data` from a thread of its own and half-closes; returns what came back before EOF.
struct Transfer {
  std::string received;
  int read_error = 0;
  bool sent = false;
  double seconds = 0;
};
Transfer EchoThrough(int port, const std::string& data) {
  Transfer t;
  const auto start = Clock::now();
  ScopedFd fd = ConnectLoopback(port);
  if (!fd.valid()) return t;
  std::thread sender([&] {
    t.sent = SendAll(fd.get(), data.data(), data.size());
    ::shutdown(fd.get(), SHUT_WR);
  });
  t.received = ReadToEof(fd.get(), &t.read_error);
  sender.join();
  t.seconds = Seconds(Clock::now() - start);
  return t;
}

TEST(WanProxyTest, PrintsThePortItListensOn) {
  EchoServer echo;
  Proxy proxy(echo.port(), {});
  ASSERT_NE(proxy.port(), 0);
  EXPECT_EQ(proxy.Stdout(), std::to_string(proxy.port()) + "\n");
}

TEST(WanProxyTest, RequestResponseCostsTheRttAndANewConnectionOneMore) {
  constexpr auto kRtt = 200ms;
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "200", "--rate", "1gbit"});
  ASSERT_NE(proxy.port(), 0);
  const auto t0 = Clock::now();
  ScopedFd fd = ConnectLoopback(proxy.port());
  ASSERT_TRUE(fd.valid());
  const std::string ping = "ping";
  ASSERT_TRUE(SendAll(fd.get(), ping.data(), ping.size()));
  EXPECT_EQ(ReadExactly(fd.get(), ping.size()), ping);
  const auto first = Clock::now() - t0;
  EXPECT_GE(first, 2 * kRtt) << "handshake + exchange";
  EXPECT_LE(first, 2 * kRtt + 2s);
  for (int i = 0; i < 3; ++i) {
    const auto t1 = Clock::now();
    const std::string msg = "request " + std::to_string(i);
    ASSERT_TRUE(SendAll(fd.get(), msg.data(), msg.size()));
    EXPECT_EQ(ReadExactly(fd.get(), msg.size()), msg);
    const auto rt = Clock::now() - t1;
    EXPECT_GE(rt, kRtt) << "exchange " << i;
    EXPECT_LE(rt, kRtt + 2s) << "exchange " << i;
  }
}

TEST(WanProxyTest, NoHandshakeMakesTheFirstExchangeOneRtt) {
  constexpr auto kRtt = 100ms;
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "100", "--no-handshake"});
  ASSERT_NE(proxy.port(), 0);
  const auto t0 = Clock::now();
  ScopedFd fd = ConnectLoopback(proxy.port());
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(SendAll(fd.get(), "x", 1));
  EXPECT_EQ(ReadExactly(fd.get(), 1), "x");
  const auto first = Clock::now() - t0;
  EXPECT_GE(first, kRtt);
  EXPECT_LE(first, kRtt + 2s);
}

TEST(WanProxyTest, RateCapsTheTransfer) {
  // 40 Mbit/s = 5 MB/s each way; 3 MiB through the echo takes at least 3 MiB / 5 MB/s = 0.63 s
  // (the two directions overlap, so that is also about what it should take).
  constexpr size_t kBytes = 3 << 20;
  constexpr double kBytesPerSecond = 5e6;
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "10", "--rate", "40mbit"});
  ASSERT_NE(proxy.port(), 0);
  const std::string data = RandomBytes(kBytes, 1);
  const Transfer t = EchoThrough(proxy.port(), data);
  ASSERT_TRUE(t.sent);
  EXPECT_EQ(t.read_error, 0);
  EXPECT_EQ(FirstDifference(t.received, data), -1);
  const double floor = kBytes / kBytesPerSecond + 0.010;
  EXPECT_GE(t.seconds, floor);
  EXPECT_LE(t.seconds, floor + 20);
  std::printf("3 MiB echoed at 40mbit in %.3f s (floor %.3f s)\n", t.seconds, floor);
}

TEST(WanProxyTest, BytesArriveExactInOrderAndEofAfterThem) {
  // 8 MiB of random bytes both ways through a 5 ms, 1 Gbit/s link; the client half-closes after
  // sending, the server sees EOF only after every byte, echoes its last bytes after the client's
  // half-close, and its own EOF reaches the client after all of them.
  constexpr size_t kBytes = 8 << 20;
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "5", "--rate", "1gbit"});
  ASSERT_NE(proxy.port(), 0);
  const std::string data = RandomBytes(kBytes, 2);
  const Transfer t = EchoThrough(proxy.port(), data);
  ASSERT_TRUE(t.sent);
  EXPECT_EQ(t.read_error, 0);
  EXPECT_EQ(t.received.size(), data.size());
  EXPECT_EQ(FirstDifference(t.received, data), -1);
  EXPECT_TRUE(harness::WaitUntil([&] { return echo.ReceivedBeforeEof().size() == 1; }));
  EXPECT_EQ(echo.ReceivedBeforeEof(), std::vector<size_t>{kBytes});
}

TEST(WanProxyTest, ConnectionsAreIndependent) {
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "2"});
  ASSERT_NE(proxy.port(), 0);
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      const std::string data = RandomBytes(1 << 20, 10 + i);
      const Transfer t = EchoThrough(proxy.port(), data);
      if (t.sent && t.read_error == 0 && t.received == data) ++good;
    });
  }
  for (std::thread& c : clients) c.join();
  EXPECT_EQ(good.load(), 4);
}

TEST(WanProxyTest, SustainsAGigabitOnLoopback) {
  // 64 MiB each way at --rate 1gbit: at least 0.54 s; reported, bounded loosely (sanitizer build).
  constexpr size_t kBytes = 64 << 20;
  EchoServer echo;
  Proxy proxy(echo.port(), {"--rtt-ms", "1", "--rate", "1gbit"});
  ASSERT_NE(proxy.port(), 0);
  const std::string data = RandomBytes(kBytes, 3);
  const Transfer t = EchoThrough(proxy.port(), data);
  ASSERT_TRUE(t.sent);
  EXPECT_EQ(FirstDifference(t.received, data), -1);
  EXPECT_GE(t.seconds, kBytes / 125e6);
  EXPECT_LE(t.seconds, 60);
  std::printf("64 MiB echoed at 1gbit in %.3f s = %.0f Mbit/s each way\n", t.seconds,
              kBytes * 8 / t.seconds / 1e6);
}

TEST(WanProxyTest, UpstreamRefusedClosesTheClientAndTheProxyGoesOn) {
  // A port bound but never listened on: connecting is refused, and no other test can take it.
  ScopedFd reserved(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(reserved.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(reserved.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Proxy proxy(ntohs(addr.sin_port), {});
  ASSERT_NE(proxy.port(), 0);
  ScopedFd fd = ConnectLoopback(proxy.port());
  ASSERT_TRUE(fd.valid());
  int error = 0;
  EXPECT_EQ(ReadToEof(fd.get(), &error), "");
  EXPECT_TRUE(proxy.child().Running());
  EXPECT_NE(proxy.Stderr().find("connect to upstream"), std::string::npos) << proxy.Stderr();
}

TEST(WanProxyTest, SigtermAndSigintStopItWithExitZero) {
  for (const int sig : {SIGTERM, SIGINT}) {
    EchoServer echo;
    Proxy proxy(echo.port(), {"--rtt-ms", "50"});
    ASSERT_NE(proxy.port(), 0);
    // An open connection with bytes in flight does not keep it alive.
    ScopedFd fd = ConnectLoopback(proxy.port());
    ASSERT_TRUE(fd.valid());
    ASSERT_TRUE(SendAll(fd.get(), "abc", 3));
    ASSERT_EQ(ReadExactly(fd.get(), 3), "abc");
    ASSERT_TRUE(SendAll(fd.get(), "def", 3));
    ASSERT_EQ(::kill(proxy.child().pid(), sig), 0);
    EXPECT_TRUE(harness::WaitUntil([&] { return !proxy.child().Running(); }));
    const auto status = proxy.child().wait_status();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status)) << "signal " << sig;
    EXPECT_EQ(WEXITSTATUS(*status), 0) << "signal " << sig;
    int error = 0;
    (void)ReadToEof(fd.get(), &error);  // the cut connection ends (EOF or reset), never hangs
  }
}

TEST(WanProxyTest, BadArgumentsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {WAN_PROXY_BINARY},
      {WAN_PROXY_BINARY, "--upstream", "127.0.0.1:1", "--rate", "fast"},
      {WAN_PROXY_BINARY, "--upstream", "127.0.0.1:1", "--rtt-ms"},
      {WAN_PROXY_BINARY, "--upstream", "127.0.0.1:1", "--bogus"},
  };
  for (const auto& argv : cases) {
    const harness::CommandResult r = harness::RunForResult(argv);
    EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
    EXPECT_TRUE(r.stderr_text.starts_with("wan_proxy: ")) << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
  }
}

}  // namespace
}  // namespace hoist
