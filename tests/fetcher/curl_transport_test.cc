// CurlTransport against a tiny real HTTP/1.1 server (python3) on 127.0.0.1.
#include "fetcher/curl_transport.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/file_util.h"
#include "base/spawn.h"
#include "tests/harness/wait.h"

namespace hoist {
namespace {

constexpr char kServer[] = R"PY(
import http.server, socketserver, sys, time, json, os
BLOB = bytes((i * 7) % 251 for i in range(100000))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        if self.path == "/blob":
            r = self.headers.get("Range")
            if r:
                a, b = r[len("bytes="):].split("-")
                a, b = int(a), int(b)
                return self.send(206, BLOB[a:b+1], [("Content-Range", "bytes %d-%d/%d" % (a, b, len(BLOB)))])
            return self.send(200, BLOB)
        if self.path == "/truncate":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 50)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/redirect":
            return self.send(307, b"", [("Location", "/blob"), ("X-Multi", "1"), ("X-Multi", "2")])
        if self.path == "/slow":
            time.sleep(5)
            return self.send(200, b"late")
        if self.path == "/port":
            return self.send(200, str(self.client_address[1]).encode())
        if self.path == "/hold-port":
            time.sleep(0.3)
            return self.send(200, str(self.client_address[1]).encode())
        if self.path.startswith("/status/"):
            return self.send(int(self.path[8:]), b'{"errors":[{"code":"X","message":"y"}]}')
        return self.echo()
    def echo(self):
        data = self.body()
        out = {"method": self.command, "path": self.path, "body": data.decode("latin1"),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        return self.send(200, json.dumps(out, sort_keys=True).encode(), [("Content-Type", "application/json")])
    do_POST = do_PUT = do_PATCH = do_DELETE = echo
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address): pass
s = S(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f: f.write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
)PY";

std::string Blob() {
  std::string b;
  for (int i = 0; i < 100000; ++i) b.push_back(static_cast<char>((i * 7) % 251));
  return b;
}

class CurlTransportTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/hoist-curl-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    ASSERT_TRUE(WriteFileAtomic(*dir_ + "/server.py", kServer));
    std::string port_file = *dir_ + "/port";
    SpawnOptions o;
    o.search_path = true;
    o.stdin_to = Stdio::Null();
    auto server = Spawn({"python3", *dir_ + "/server.py", port_file}, o);
    ASSERT_TRUE(server) << server.error().message();
    server_ = new Process(std::move(*server));
    std::string port;
    ASSERT_TRUE(harness::WaitUntil([&] {
      port = ReadFile(port_file).value_or("");
      return !port.empty();
    })) << "test HTTP server did not start";
    base_ = new std::string("http://127.0.0.1:" + port);
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      (void)server_->Signal(SIGTERM);
      (void)server_->Wait();
    }
    delete server_;
    if (dir_) (void)RemoveTree(*dir_);
    delete dir_;
    delete base_;
  }
  void SetUp() override {
    ASSERT_NE(base_, nullptr);
    auto t = NewCurlTransport();
    ASSERT_TRUE(t);
    transport_ = std::move(*t);
  }
  Result<HttpResponse> Get(const std::string& path, HttpHeaderList headers = {}) {
    HttpRequest req;
    req.url = *base_ + path;
    req.headers = std::move(headers);
    return transport_->RoundTrip(req);
  }

  static inline Process* server_ = nullptr;
  static inline std::string* dir_ = nullptr;
  static inline std::string* base_ = nullptr;
  std::unique_ptr<HttpTransport> transport_;
};

TEST_F(CurlTransportTest, RangeGetAndHead) {
  auto r = Get("/blob", {{"Range", "bytes=1000-1999"}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->body, Blob().substr(1000, 1000));
  EXPECT_EQ(r->Header("content-range"), "bytes 1000-1999/100000");
  HttpRequest head;
  head.method = "HEAD";
  head.url = *base_ + "/blob";
  auto h = transport_->RoundTrip(head);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->Header("content-length"), "100000");
  EXPECT_TRUE(h->body.empty());
}

TEST_F(CurlTransportTest, StreamsIntoSinkAfterHead) {
  std::string got;
  int heads = 0;
  HttpRequest req;
  req.url = *base_ + "/blob";
  req.on_head = [&](const HttpResponse& head) -> Status {
    ++heads;
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(got.empty());
    return Ok();
  };
  req.body_sink = [&](std::string_view chunk) -> Status {
    got.append(chunk);
    return Ok();
  };
  auto r = transport_->RoundTrip(req);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->body.empty());
  EXPECT_EQ(got, Blob());
  EXPECT_EQ(heads, 1);
  // A sink error aborts the transfer and comes back unchanged.
  req.on_head = nullptr;
  req.body_sink = [](std::string_view) -> Status { return Fail(EFBIG, "too big"); };
  auto e = transport_->RoundTrip(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), EFBIG);
  EXPECT_EQ(e.error().message(), "too big");
}

TEST_F(CurlTransportTest, RedirectsAreNotFollowedAndHeadersAreLowerCased) {
  auto r = Get("/redirect");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 307);
  EXPECT_EQ(r->Header("location"), "/blob");
  EXPECT_EQ(r->Headers("x-multi"), (std::vector<std::string>{"1", "2"}));
}

TEST_F(CurlTransportTest, ErrorStatusBodyIsCollectedNotSunk) {
  HttpRequest req;
  req.url = *base_ + "/status/404";
  bool sunk = false;
  req.body_sink = [&](std::string_view) -> Status {
    sunk = true;
    return Ok();
  };
  auto r = transport_->RoundTrip(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, R"({"errors":[{"code":"X","message":"y"}]})");
  EXPECT_FALSE(sunk);
}

TEST_F(CurlTransportTest, TruncatedBodyIsConnReset) {
  auto r = Get("/truncate");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ECONNRESET);
  EXPECT_TRUE(IsTransientNetworkError(r.error()));
  EXPECT_NE(r.error().message().find("truncated"), std::string::npos) << r.error().message();
}

TEST_F(CurlTransportTest, RequestBodiesAndMethods) {
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    HttpRequest req;
    req.method = method;
    req.url = *base_ + "/echo";
    req.headers = {{"Content-Type", "application/octet-stream"}, {"Content-Range", "0-4"}};
    req.body = "hello";
    auto r = transport_->RoundTrip(req);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_NE(r->body.find(std::string("\"method\": \"") + method + "\""), std::string::npos)
        << r->body;
    EXPECT_NE(r->body.find("\"body\": \"hello\""), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("\"content-range\": \"0-4\""), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("\"content-length\": \"5\""), std::string::npos) << r->body;
    EXPECT_EQ(r->body.find("expect"), std::string::npos) << r->body;
  }
  // An empty POST says Content-Length: 0.
  HttpRequest post;
  post.method = "POST";
  post.url = *base_ + "/echo";
  auto p = transport_->RoundTrip(post);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_NE(p->body.find("\"content-length\": \"0\""), std::string::npos) << p->body;
  // A streamed body.
  std::string big(300000, 'z');
  size_t pos = 0;
  HttpRequest put;
  put.method = "PUT";
  put.url = *base_ + "/echo";
  put.body_size = big.size();
  put.body_reader = [&](char* buf, size_t max) -> Result<size_t> {
    size_t n = std::min(max, big.size() - pos);
    std::memcpy(buf, big.data() + pos, n);
    pos += n;
    return n;
  };
  auto s = transport_->RoundTrip(put);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_NE(s->body.find("\"content-length\": \"300000\""), std::string::npos);
  EXPECT_NE(s->body.find(big), std::string::npos);
}

TEST_F(CurlTransportTest, ConnectionIsReused) {
  auto a = Get("/port");
  auto b = Get("/port");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->body, b->body);  // same client port: the same kept-alive connection
}

TEST_F(CurlTransportTest, FreshConnectionsOpenANewOneThatStaysInTheCache) {
  auto a = Get("/port");
  ASSERT_TRUE(a);
  std::set<std::string> fresh;
  {
    FreshConnections scope;
    for (int i = 0; i < 10; ++i) {
      auto r = Get("/port");
      ASSERT_TRUE(r);
      EXPECT_NE(r->body, a->body) << i;
      fresh.insert(r->body);
    }
  }
  EXPECT_EQ(fresh.size(), 10u);  // each on a connection of its own
  // All eleven stay open (more than libcurl's default cache of 5): eleven requests held open
  // together by the server find an idle connection each and open none.
  fresh.insert(a->body);
  std::vector<std::string> got(11);
  std::vector<std::thread> threads;
  for (int i = 0; i < 11; ++i) {
    threads.emplace_back([&, i] {
      auto r = Get("/hold-port");
      if (r) got[i] = r->body;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 11; ++i) EXPECT_TRUE(fresh.contains(got[i])) << i << ": " << got[i];
}

TEST_F(CurlTransportTest, ConcurrentRequestsFromThreads) {
  std::vector<std::thread> threads;
  std::vector<std::string> got(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = Get("/blob", {{"Range", "bytes=" + std::to_string(i * 1000) + "-" +
                                           std::to_string(i * 1000 + 499)}});
      if (r) got[i] = r->body;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(got[i], Blob().substr(i * 1000, 500)) << i;
}

TEST_F(CurlTransportTest, TimeoutsAndRefusedConnections) {
  HttpRequest req;
  req.url = *base_ + "/slow";
  req.timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto r = transport_->RoundTrip(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // Cancellation.
  req.timeout = std::chrono::milliseconds(0);
  req.cancelled = [] { return true; };
  auto c = transport_->RoundTrip(req);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ECANCELED);
  // Nobody listens on port 1.
  HttpRequest refused;
  refused.url = "http://127.0.0.1:1/";
  auto e = transport_->RoundTrip(refused);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), ECONNREFUSED);
  EXPECT_TRUE(e.error().message().starts_with("GET http://127.0.0.1:1/: ")) << e.error().message();
  HttpRequest bad;
  bad.url = "ftp://127.0.0.1/";
  auto b = transport_->RoundTrip(bad);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), EINVAL);
}

}  // namespace
}  // namespace hoist
