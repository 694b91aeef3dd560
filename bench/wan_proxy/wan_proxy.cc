// wan_proxy: a TCP proxy that makes loopback look like a WAN link, for the benchmarks (this
// machine has no netem).
//
//   wan_proxy --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0] --rtt-ms 40 --rate 200mbit
//             [--port-file FILE] [--no-handshake]
//
// Every accepted connection gets its own connection to --upstream; both directions are
// forwarded with each byte delayed by RTT/2 and paced at --rate per connection per direction
// (bench/wan_proxy/link_schedule.h), order kept, half-close (shutdown) propagated after the
// queued data, both sockets closed once both sides have ended. A new connection's first bytes
// also wait one RTT (the TCP handshake a real WAN charges) unless --no-handshake. Not
// emulated: loss, jitter, reordering, a shared bottleneck between connections, TCP slow start.
//
// Output: the listening port on stdout (one line, flushed) once it accepts connections, and in
// --port-file (written to a temporary name and renamed, so a reader never sees half of it).
// Errors on one connection (upstream refused, a reset) close that connection and are logged as
// one line on stderr; the proxy goes on.
// Exit: 0 after SIGINT or SIGTERM (open connections are cut, threads joined); 2 on bad
// arguments (one-line error); 1 if it cannot listen or write the port file.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "bench/wan_proxy/connection.h"
#include "bench/wan_proxy/options.h"

namespace hoist::wan {
namespace {

struct Resolved {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

Result<Resolved> Resolve(const HostPort& hp, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &list);
  if (rc != 0 || list == nullptr) {
    return Fail(EINVAL, "cannot resolve " + hp.host + ": " + ::gai_strerror(rc));
  }
  Resolved r;
  std::memcpy(&r.addr, list->ai_addr, list->ai_addrlen);
  r.len = list->ai_addrlen;
  r.family = list->ai_family;
  ::freeaddrinfo(list);
  return r;
}

void SetNoDelay(int fd) {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // best effort
}

Result<ScopedFd> Listen(const Resolved& at, int* port) {
  ScopedFd fd(::socket(at.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Fail(ErrnoError("socket"));
  const int one = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // best effort
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) {
    return Fail(ErrnoError("bind"));
  }
  if (::listen(fd.get(), 256) != 0) return Fail(ErrnoError("listen"));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return Fail(ErrnoError("getsockname"));
  }
  *port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

Result<ScopedFd> ConnectUpstream(const Resolved& upstream) {
  for (;;) {
    ScopedFd fd(::socket(upstream.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Fail(ErrnoError("socket"));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&upstream.addr), upstream.len) == 0) {
      return fd;
    }
    if (errno != EINTR) return Fail(ErrnoError("connect to upstream"));
  }
}

int Run(const ProxyOptions& options) {
  auto upstream = Resolve(options.upstream, false);
  auto listen_at = Resolve(options.listen, true);
  if (!upstream || !listen_at) {
    std::fprintf(stderr, "wan_proxy: %s\n",
                 (!upstream ? upstream.error() : listen_at.error()).message().c_str());
    return 2;
  }
  // SIGINT/SIGTERM arrive on a signalfd; blocked before any thread starts so no thread takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ScopedFd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
  if (!signals.valid()) {
    std::fprintf(stderr, "wan_proxy: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  int port = 0;
  auto listener = Listen(*listen_at, &port);
  if (!listener) {
    std::fprintf(stderr, "wan_proxy: listening on %s:%s: %s\n", options.listen.host.c_str(),
                 options.listen.port.c_str(), listener.error().message().c_str());
    return 1;
  }
  if (!options.port_file.empty()) {
    const Status written = WriteFileAtomic(options.port_file, std::to_string(port) + "\n");
    if (!written) {
      std::fprintf(stderr, "wan_proxy: %s\n", written.error().message().c_str());
      return 1;
    }
  }
  std::printf("%d\n", port);
  std::fflush(stdout);

  const LinkParams link{options.rtt, options.bytes_per_second, options.handshake};
  std::list<std::unique_ptr<Connection>> connections;
  for (;;) {
    pollfd fds[2] = {{listener->get(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, 1000);
    // Finished connections are destroyed (threads joined, sockets closed) here, at least once a
    // second.
    std::erase_if(connections, [](const std::unique_ptr<Connection>& c) { return c->Finished(); });
    if (ready < 0 && errno != EINTR) {
      std::fprintf(stderr, "wan_proxy: poll: %s\n", std::strerror(errno));
      break;
    }
    if (ready <= 0) continue;
    if (fds[1].revents & POLLIN) break;
    if (!(fds[0].revents & POLLIN)) continue;
    ScopedFd client(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    const auto accepted_at = LinkSchedule::Clock::now();
    if (!client.valid()) continue;  // EINTR, ECONNABORTED, EMFILE: try again on the next poll
    auto up = ConnectUpstream(*upstream);
    if (!up) {
      std::fprintf(stderr, "wan_proxy: %s: closing the client's connection\n",
                   up.error().message().c_str());
      continue;
    }
    SetNoDelay(client.get());
    SetNoDelay(up->get());
    connections.push_back(
        std::make_unique<Connection>(std::move(client), std::move(*up), link, accepted_at));
  }
  connections.clear();  // Abort and join each
  return 0;
}

}  // namespace
}  // namespace hoist::wan

int main(int argc, char** argv) {
  using namespace hoist::wan;
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto options = ParseProxyOptions(args);
  if (!options) {
    std::fprintf(stderr, "wan_proxy: %s\n", options.error().message().c_str());
    return 2;
  }
  if (options->help_requested) {
    std::fputs(ProxyUsage(), stdout);
    return 0;
  }
  return Run(*options);
}
