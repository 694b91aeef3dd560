#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <list>
#include <vector>

#include "base/log.h"
#include "metrics/http_request.h"
#include "metrics/registry.h"

namespace hoist::metrics {
namespace {

using Clock = std::chrono::steady_clock;

Error BadAddress(std::string_view text, std::string_view why) {
  return Error(EINVAL, "metrics address \"" + std::string(text) + "\": " + std::string(why));
}

constexpr std::string_view kLoopbackRule =
    "is not a loopback address (metrics are served only on 127.0.0.0/8, [::1], localhost or "
    "unix:PATH)";

Status ClaimUnixPath(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Ok();
    return Fail(ErrnoError("metrics socket " + path));
  }
  if (!S_ISSOCK(st.st_mode))
    return Fail(EEXIST, "metrics socket " + path + " exists and is not a socket");
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Fail(ErrnoError("socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return Fail(EADDRINUSE, "metrics socket " + path + ": another process is serving it");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoError("removing the stale metrics socket " + path));
  }
  return Ok();
}

struct Conn {
  ScopedFd fd;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool responding = false;
  Clock::time_point deadline;
};

std::string Response(int status, std::string_view reason, std::string_view content_type,
                     const std::string& body, bool head_only, std::string_view extra = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  r += "Content-Type: " + std::string(content_type) + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "Connection: close\r\n\r\n";
  if (!head_only) r += body;
  return r;
}

std::string ErrorResponse(int status, std::string_view reason, std::string_view extra = {}) {
  return Response(status, reason, "text/plain; charset=utf-8", std::string(reason) + "\n", false,
                  extra);
}

// The response to a complete request head (`head` ends before the blank line).
std::string Answer(std::string_view head, const MetricsServer::Render& render) {
  switch (ClassifyRequest(head)) {
    case RequestKind::kGetMetrics:
    case RequestKind::kHeadMetrics:
      return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render(),
                      ClassifyRequest(head) == RequestKind::kHeadMetrics);
    case RequestKind::kMethodNotAllowed:
      return ErrorResponse(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
    case RequestKind::kNotFound:
      return ErrorResponse(404, "Not Found");
    case RequestKind::kBadRequest:
      break;
  }
  return ErrorResponse(400, "Bad Request");
}

}  // namespace

Result<Address> ParseAddress(std::string_view text) {
  Address a;
  a.text = std::string(text);
  if (text.starts_with("unix:")) {
    a.kind = Address::Kind::kUnix;
    a.path = std::string(text.substr(5));
    if (a.path.empty() || a.path[0] != '/') {
      return Fail(BadAddress(text, "unix: needs an absolute socket path"));
    }
    if (a.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Fail(BadAddress(text, "the socket path is longer than " +
                                       std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                       " bytes"));
    }
    return a;
  }
  std::string_view host, port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Fail(BadAddress(text, "expected HOST:PORT, [::1]:PORT or unix:PATH"));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Fail(BadAddress(text, "expected HOST:PORT, [::1]:PORT or unix:PATH"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Fail(BadAddress(text, "an IPv6 address goes in brackets: [::1]:PORT"));
    }
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return Fail(BadAddress(text, "the port must be a number from 0 to 65535"));
  }
  a.port = static_cast<uint16_t>(value);
  if (host == "localhost") {
    a.host = "127.0.0.1";
    return a;
  }
  const std::string h(host);
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    if ((ntohl(v4.s_addr) >> 24) != 127)
      return Fail(BadAddress(text, h + " " + std::string(kLoopbackRule)));
    a.host = h;
    return a;
  }
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6))
      return Fail(BadAddress(text, h + " " + std::string(kLoopbackRule)));
    a.host = h;
    return a;
  }
  return Fail(BadAddress(
      text, (h.empty() ? std::string("an empty host") : h) + " " + std::string(kLoopbackRule)));
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const Address& address, Render render,
                                                            ServerOptions options) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->address_ = address;
  s->render_ = std::move(render);
  s->options_ = options;
  const std::string what = "metrics address " + address.text;
  if (address.kind == Address::Kind::kUnix) {
    HOIST_RETURN_IF_ERROR(ClaimUnixPath(address.path));
    s->listen_fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s->listen_fd_.valid()) return Fail(ErrnoError(what + ": socket"));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address.path.data(), address.path.size());
    if (::bind(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail(ErrnoError(what + ": bind"));
    }
  } else {
    const bool v6 = address.host.find(':') != std::string::npos;
    s->listen_fd_.Reset(
        ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s->listen_fd_.valid()) return Fail(ErrnoError(what + ": socket"));
    const int one = 1;
    (void)::setsockopt(s->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc;
    if (v6) {
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_port = htons(address.port);
      ::inet_pton(AF_INET6, address.host.c_str(), &addr.sin6_addr);
      rc = ::bind(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    } else {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(address.port);
      ::inet_pton(AF_INET, address.host.c_str(), &addr.sin_addr);
      rc = ::bind(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    }
    if (rc != 0) return Fail(ErrnoError(what + ": bind"));
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    if (::getsockname(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
      s->port_ = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                    : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    }
  }
  if (::listen(s->listen_fd_.get(), 64) != 0) return Fail(ErrnoError(what + ": listen"));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) return Fail(ErrnoError("pipe"));
  s->wake_read_.Reset(pipe_fds[0]);
  s->wake_write_.Reset(pipe_fds[1]);
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Loop(); });
  return s;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    const char b = 1;
    (void)!::write(wake_write_.get(), &b, 1);
    thread_.join();
  }
  listen_fd_.Reset();
  if (address_.kind == Address::Kind::kUnix && !address_.path.empty()) {
    (void)::unlink(address_.path.c_str());
  }
}

void MetricsServer::Loop() {
  std::list<Conn> conns;
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  char buf[4096];
  while (true) {
    fds.clear();
    polled.clear();
    fds.push_back({wake_read_.get(), POLLIN, 0});
    const bool accepting = static_cast<int>(conns.size()) < options_.max_connections;
    fds.push_back({accepting ? listen_fd_.get() : -1, POLLIN, 0});
    auto now = Clock::now();
    int timeout_ms = -1;
    for (Conn& c : conns) {
      fds.push_back({c.fd.get(), static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      polled.push_back(&c);
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
      const int ms = left < 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 60000));
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = ms;
    }
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) {
      HOIST_LOG(kError) << "metrics server: poll: " << std::strerror(errno);
      return;
    }
    if (n > 0 && (fds[0].revents & POLLIN)) return;  // stopping
    if (n > 0 && accepting && (fds[1].revents & POLLIN)) {
      while (static_cast<int>(conns.size()) < options_.max_connections) {
        const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        Conn& c = conns.emplace_back();
        c.fd.Reset(fd);
        c.deadline = Clock::now() + options_.io_timeout;
      }
    }
    now = Clock::now();
    std::vector<Conn*> done;
    for (size_t i = 0; i < polled.size(); ++i) {
      Conn& c = *polled[i];
      const short ev = fds[i + 2].revents;
      bool close = false;
      if (!c.responding && (ev & (POLLIN | POLLHUP | POLLERR))) {
        const size_t room =
            options_.max_request_bytes + 1 - std::min(c.in.size(), options_.max_request_bytes + 1);
        const ssize_t got = room == 0 ? 0 : ::recv(c.fd.get(), buf, std::min(room, sizeof(buf)), 0);
        if (got > 0) {
          c.in.append(buf, static_cast<size_t>(got));
          const size_t end = RequestHeadEnd(c.in);
          if (end != std::string::npos && end <= options_.max_request_bytes) {
            c.out = Answer(std::string_view(c.in).substr(0, end), render_);
            c.responding = true;
          } else if (c.in.size() > options_.max_request_bytes) {
            c.out = ErrorResponse(431, "Request Header Fields Too Large");
            c.responding = true;
          }
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          close = true;  // the client went away before a whole request
        }
      } else if (c.responding && (ev & (POLLOUT | POLLHUP | POLLERR))) {
        const ssize_t put =
            ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (put > 0) {
          c.sent += static_cast<size_t>(put);
          if (c.sent == c.out.size()) {
            (void)::shutdown(c.fd.get(), SHUT_WR);
            close = true;
          }
        } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
          close = true;
        }
      }
      if (!close && now >= c.deadline) {
        HOIST_LOG(kDebug) << "metrics server: dropping a client that did not finish in time";
        close = true;
      }
      if (close) done.push_back(&c);
    }
    for (Conn* c : done) {
      conns.remove_if([c](const Conn& x) { return &x == c; });
    }
    open_.store(static_cast<int>(conns.size()));
  }
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(std::string_view address,
                                                                bool retry_while_busy) {
  std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint());
  HOIST_ASSIGN_OR_RETURN(e->address_, ParseAddress(address));
  auto render = [] { return Global().Render(); };
  auto server = MetricsServer::Start(e->address_, render);
  if (server) {
    e->server_ = std::move(*server);
    return e;
  }
  if (!retry_while_busy || server.error().code() != EADDRINUSE) return Fail(server.error());
  HOIST_LOG(kInfo) << server.error().message() << "; retrying until the previous daemon leaves";
  MetricsEndpoint* raw = e.get();
  e->retry_ = std::thread([raw, render] {
    while (!raw->stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto again = MetricsServer::Start(raw->address_, render);
      if (again) {
        raw->server_ = std::move(*again);
        HOIST_LOG(kInfo) << "serving metrics at " << raw->address_.text;
        return;
      }
      if (again.error().code() != EADDRINUSE) {
        HOIST_LOG(kError) << again.error().message();
        return;
      }
    }
  });
  return e;
}

MetricsEndpoint::~MetricsEndpoint() {
  stop_.store(true);
  if (retry_.joinable()) retry_.join();
  server_.reset();
}

}  // namespace hoist::metrics
