// The metrics endpoint over real sockets: address rules, exact responses, bad requests, and
// clients that send or read slowly (they must not keep others from being served).
#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/scoped_fd.h"
#include "tests/harness/wait.h"

namespace hoist::metrics {
namespace {

using namespace std::chrono_literals;

ScopedFd ConnectTcp(uint16_t port) {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0)
      << std::strerror(errno);
  const timeval tv{.tv_sec = 30, .tv_usec = 0};  // a guard against a hang, never reached
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

ScopedFd ConnectUnix(const std::string& path) {
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0)
      << std::strerror(errno);
  return fd;
}

void SendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything until the server closes.
std::string ReadAll(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Exchange(uint16_t port, std::string_view request) {
  ScopedFd fd = ConnectTcp(port);
  SendAll(fd.get(), request);
  return ReadAll(fd.get());
}

std::unique_ptr<MetricsServer> StartTcp(MetricsServer::Render render, ServerOptions o = {}) {
  auto addr = ParseAddress("127.0.0.1:0");
  EXPECT_TRUE(addr) << addr.error().message();
  auto s = MetricsServer::Start(*addr, std::move(render), o);
  EXPECT_TRUE(s) << s.error().message();
  return s ? std::move(*s) : nullptr;
}

const std::string kBody = "# HELP x X.\n# TYPE x counter\nx 1\n";

TEST(MetricsAddress, AcceptsLoopbackAndUnix) {
  auto a = ParseAddress("127.0.0.1:9108");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Address::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9108);
  a = ParseAddress("127.3.2.1:0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 0);
  a = ParseAddress("localhost:65535");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 65535);
  a = ParseAddress("[::1]:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  a = ParseAddress("unix:/run/hoist/m.sock");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "/run/hoist/m.sock");
}

TEST(MetricsAddress, RefusesOthersWithOneLine) {
  const std::string rule =
      " is not a loopback address (metrics are served only on 127.0.0.0/8, [::1], localhost or "
      "unix:PATH)";
  auto a = ParseAddress("0.0.0.0:9108");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), EINVAL);
  EXPECT_EQ(a.error().message(), "metrics address \"0.0.0.0:9108\": 0.0.0.0" + rule);
  EXPECT_EQ(ParseAddress("10.1.2.3:80").error().message(),
            "metrics address \"10.1.2.3:80\": 10.1.2.3" + rule);
  EXPECT_EQ(ParseAddress("example.com:80").error().message(),
            "metrics address \"example.com:80\": example.com" + rule);
  EXPECT_EQ(ParseAddress("[::]:80").error().message(), "metrics address \"[::]:80\": ::" + rule);
  EXPECT_EQ(ParseAddress(":80").error().message(), "metrics address \":80\": an empty host" + rule);
  EXPECT_EQ(ParseAddress("127.0.0.1").error().message(),
            "metrics address \"127.0.0.1\": expected HOST:PORT, [::1]:PORT or unix:PATH");
  EXPECT_EQ(ParseAddress("127.0.0.1:65536").error().message(),
            "metrics address \"127.0.0.1:65536\": the port must be a number from 0 to 65535");
  EXPECT_EQ(ParseAddress("127.0.0.1:x").error().message(),
            "metrics address \"127.0.0.1:x\": the port must be a number from 0 to 65535");
  EXPECT_EQ(ParseAddress("::1:80").error().message(),
            "metrics address \"::1:80\": an IPv6 address goes in brackets: [::1]:PORT");
  EXPECT_EQ(ParseAddress("unix:rel.sock").error().message(),
            "metrics address \"unix:rel.sock\": unix: needs an absolute socket path");
}

TEST(MetricsServer, ServesGetMetricsExactly) {
  auto server = StartTcp([] { return kBody; });
  ASSERT_TRUE(server);
  ASSERT_NE(server->port(), 0);
  EXPECT_EQ(Exchange(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(kBody.size()) +
                "\r\n"
                "Connection: close\r\n\r\n" +
                kBody);
  // A query string is ignored; a bare-LF request head is accepted.
  EXPECT_EQ(Exchange(server->port(), "GET /metrics?x=1 HTTP/1.0\n\n").substr(0, 17),
            "HTTP/1.1 200 OK\r\n");
  const std::string head = Exchange(server->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(kBody.size()) + "\r\nConnection: close\r\n\r\n");
}

TEST(MetricsServer, AnswersBadRequestsWithTheirStatus) {
  auto server = StartTcp([] { return kBody; });
  ASSERT_TRUE(server);
  const auto p = server->port();
  EXPECT_EQ(Exchange(p, "POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 19\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"
            "Method Not Allowed\n");
  EXPECT_EQ(Exchange(p, "GET / HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 10\r\nConnection: close\r\n\r\nNot Found\n");
  EXPECT_EQ(Exchange(p, "GET /metricsx HTTP/1.1\r\n\r\n").substr(0, 24),
            "HTTP/1.1 404 Not Found\r\n");
  for (const char* bad : {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/2\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/1.1 x\r\n\r\n", "\x01\x02\x03\r\n\r\n"}) {
    EXPECT_EQ(Exchange(p, bad).substr(0, 25), "HTTP/1.1 400 Bad Request\r") << bad;
  }
  // A request head larger than the bound: 431, without waiting for the rest.
  ScopedFd fd = ConnectTcp(p);
  SendAll(fd.get(), "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a'));
  EXPECT_EQ(ReadAll(fd.get()).substr(0, 46), "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  // The server still serves.
  EXPECT_EQ(Exchange(p, "GET /metrics HTTP/1.1\r\n\r\n").substr(0, 17), "HTTP/1.1 200 OK\r\n");
}

TEST(MetricsServer, SilentClientIsDroppedAndDoesNotBlockOthers) {
  ServerOptions o;
  o.io_timeout = 300ms;
  auto server = StartTcp([] { return kBody; }, o);
  ASSERT_TRUE(server);
  ScopedFd silent = ConnectTcp(server->port());
  SendAll(silent.get(), "GET /metr");  // and never more
  // Served while the silent client hangs on.
  EXPECT_EQ(Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n").substr(0, 17),
            "HTTP/1.1 200 OK\r\n");
  // The silent one is closed at its deadline with no response.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadAll(silent.get()), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
}

TEST(MetricsServer, ClientThatDoesNotReadIsDropped) {
  ServerOptions o;
  o.io_timeout = 500ms;
  const std::string big(32 << 20, 'x');  // far more than the socket buffers hold
  std::atomic<int> renders{0};
  // The first scrape is huge, the later ones small.
  auto server = StartTcp([&] { return renders++ == 0 ? big : kBody; }, o);
  ASSERT_TRUE(server);
  ScopedFd lazy(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int small = 4096;
  ASSERT_EQ(::setsockopt(lazy.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(lazy.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  SendAll(lazy.get(), "GET /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(harness::WaitUntil([&] { return renders.load() == 1; }));
  // Another client is served in full while the first reads nothing.
  const std::string other = Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(other.ends_with("\r\n\r\n" + kBody)) << other;
  // The lazy one is dropped at its deadline: it sees part of the response, then the close.
  ASSERT_TRUE(harness::WaitUntil([&] { return server->open_connections() == 0; }));
  const timeval tv{.tv_sec = 30, .tv_usec = 0};
  ::setsockopt(lazy.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string got = ReadAll(lazy.get());
  EXPECT_EQ(got.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_LT(got.size(), big.size());
}

TEST(MetricsServer, ConnectionsBeyondTheLimitWaitForAFreeSlot) {
  ServerOptions o;
  o.io_timeout = 300ms;
  o.max_connections = 2;
  auto server = StartTcp([] { return kBody; }, o);
  ASSERT_TRUE(server);
  ScopedFd a = ConnectTcp(server->port());
  ScopedFd b = ConnectTcp(server->port());
  // Both slots held by silent clients; the third is served once their deadlines pass.
  EXPECT_EQ(Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n").substr(0, 17),
            "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(ReadAll(a.get()), "");
  EXPECT_EQ(ReadAll(b.get()), "");
}

TEST(MetricsServer, UnixSocketReplacesAStaleOneAndRefusesALiveOne) {
  char tmpl[] = "/tmp/hoist-metrics-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/m.sock";
  {
    // A stale socket file (its listener is gone).
    ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  auto addr = ParseAddress("unix:" + path);
  ASSERT_TRUE(addr);
  auto server = MetricsServer::Start(*addr, [] { return kBody; });
  ASSERT_TRUE(server) << server.error().message();
  EXPECT_EQ((*server)->port(), 0);
  {
    ScopedFd fd = ConnectUnix(path);
    SendAll(fd.get(), "GET /metrics HTTP/1.1\r\n\r\n");
    const std::string got = ReadAll(fd.get());
    EXPECT_EQ(got.substr(0, 17), "HTTP/1.1 200 OK\r\n");
    EXPECT_TRUE(got.ends_with("\r\n\r\n" + kBody));
  }
  auto second = MetricsServer::Start(*addr, [] { return kBody; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), EADDRINUSE);
  EXPECT_EQ(second.error().message(), "metrics socket " + path + ": another process is serving it");
  server->reset();
  struct stat st;
  EXPECT_NE(::lstat(path.c_str(), &st), 0);  // removed at stop
  ::rmdir(tmpl);
}

TEST(MetricsServer, TcpAddressInUseIsOneLine) {
  auto first = StartTcp([] { return kBody; });
  ASSERT_TRUE(first);
  const std::string text = "127.0.0.1:" + std::to_string(first->port());
  auto addr = ParseAddress(text);
  ASSERT_TRUE(addr);
  auto second = MetricsServer::Start(*addr, [] { return kBody; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), EADDRINUSE);
  EXPECT_EQ(second.error().message().substr(0, text.size() + 22),
            "metrics address " + text + ": bind");
}

}  // namespace
}  // namespace hoist::metrics
