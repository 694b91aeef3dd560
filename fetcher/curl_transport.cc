// The libcurl implementation of HttpTransport. The only file in hoist that includes curl.
#include "fetcher/curl_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "base/mutex.h"

namespace hoist {
namespace {

thread_local bool t_fresh_connections = false;

std::once_flag g_curl_init_once;
CURLcode g_curl_init_result = CURLE_OK;

// A curl_slist owner.
class HeaderList {
 public:
  HeaderList() = default;
  ~HeaderList() { curl_slist_free_all(list_); }
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  void Add(const std::string& line) {
    curl_slist* next = curl_slist_append(list_, line.c_str());
    if (next) list_ = next;
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

// State for one transfer, reached from curl's callbacks.
struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse response;
  bool saw_status = false;
  bool head_delivered = false;
  std::optional<Error> callback_error;  // from the sink or the reader
  uint64_t body_sent = 0;
  std::string_view body_left;  // for request.body
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  line = Trim(line);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100 Continue, or the first): start over.
    t->response.headers.clear();
    t->head_delivered = false;
    size_t sp = line.find(' ');
    int status = 0;
    if (sp != std::string_view::npos) {
      for (size_t i = sp + 1; i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]));
           ++i) {
        status = status * 10 + (line[i] - '0');
      }
    }
    t->response.status = status;
    t->saw_status = true;
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    t->response.headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                                     std::string(Trim(line.substr(colon + 1))));
  }
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t total = size * n;
  int status = t->response.status;
  bool ok = status >= 200 && status < 300;
  if (ok && t->request->body_sink) {
    if (!t->head_delivered) {
      t->head_delivered = true;
      if (t->request->on_head) {
        Status head = t->request->on_head(t->response);
        if (!head) {
          t->callback_error = head.error();
          return 0;
        }
      }
    }
    Status s = t->request->body_sink(std::string_view(data, total));
    if (!s) {
      t->callback_error = s.error();
      return 0;  // abort: CURLE_WRITE_ERROR
    }
    return total;
  }
  if (!ok) {
    size_t room = kMaxErrorBodySize - std::min(kMaxErrorBodySize, t->response.body.size());
    t->response.body.append(data, std::min(room, total));
    return total;
  }
  t->response.body.append(data, total);
  return total;
}

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t max = size * n;
  if (t->request->body_reader) {
    uint64_t left = t->request->body_size - t->body_sent;
    if (left == 0) return 0;
    auto got = t->request->body_reader(buf, static_cast<size_t>(std::min<uint64_t>(max, left)));
    if (!got) {
      t->callback_error = got.error();
      return CURL_READFUNC_ABORT;
    }
    if (*got == 0) {
      t->callback_error =
          Error(EIO, "request body reader ended after " + std::to_string(t->body_sent) + " of " +
                         std::to_string(t->request->body_size) + " bytes");
      return CURL_READFUNC_ABORT;
    }
    t->body_sent += *got;
    return *got;
  }
  size_t count = std::min(max, t->body_left.size());
  std::memcpy(buf, t->body_left.data(), count);
  t->body_left.remove_prefix(count);
  return count;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->request->cancelled && t->request->cancelled()) return 1;
  return 0;
}

int ErrnoFor(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      return ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return EHOSTUNREACH;
    case CURLE_OPERATION_TIMEDOUT:
      return ETIMEDOUT;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return ECONNRESET;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return EINVAL;
    case CURLE_ABORTED_BY_CALLBACK:
      return ECANCELED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return EPROTO;
    case CURLE_OUT_OF_MEMORY:
      return ENOMEM;
    default:
      return EIO;
  }
}

class CurlTransport : public HttpTransport {
 public:
  explicit CurlTransport(CurlTransportOptions options) : options_(std::move(options)) {}

  ~CurlTransport() override {
    {
      MutexLock lock(pool_mu_);
      idle_.clear();
    }
    if (share_) curl_share_cleanup(share_);
  }

  Status Init() {
    std::call_once(g_curl_init_once,
                   [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_ALL); });
    if (g_curl_init_result != CURLE_OK) {
      return Fail(EIO, std::string("curl_global_init: ") + curl_easy_strerror(g_curl_init_result));
    }
    share_ = curl_share_init();
    if (!share_) return Fail(ENOMEM, "curl_share_init failed");
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlTransport::Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlTransport::Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return Ok();
  }

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    EasyHandle handle = Acquire();
    if (!handle) return Fail(ENOMEM, "curl_easy_init failed");
    CURL* h = handle.get();
    curl_easy_reset(h);

    Transfer t;
    t.request = &request;
    t.body_left = request.body;
    char errbuf[CURL_ERROR_SIZE] = {0};
    HeaderList headers;
    for (const auto& [name, value] : request.headers) headers.Add(name + ": " + value);
    headers.Add("Expect:");  // no 100-continue round trip

    curl_easy_setopt(h, CURLOPT_SHARE, share_);
    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, options_.max_idle_connections);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, t_fresh_connections ? 1L : 0L);
    const HttpTlsOptions& tls = request.tls;
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls.skip_verify ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls.skip_verify ? 0L : 2L);
    if (!tls.ca_pem.empty()) {
      curl_blob ca{const_cast<char*>(tls.ca_pem.data()), tls.ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    } else if (!options_.ca_bundle.empty()) {
      curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_bundle.c_str());
    }
    if (!tls.client_cert.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, tls.client_cert.c_str());
    if (!tls.client_key.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, tls.client_key.c_str());
    auto connect_timeout =
        request.connect_timeout.count() > 0 ? request.connect_timeout : options_.connect_timeout;
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
    auto timeout = request.timeout.count() > 0 ? request.timeout : options_.default_timeout;
    if (timeout.count() > 0)
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    if (options_.low_speed_bytes_per_second > 0) {
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes_per_second);
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                       static_cast<long>(options_.low_speed_time.count()));
    }
    if (!options_.user_agent.empty())
      curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    if (options_.verbose) curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);

    const std::string& method = request.method;
    bool has_body = request.body_reader ? true : !request.body.empty();
    uint64_t body_size = request.body_reader ? request.body_size : request.body.size();
    if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method == "GET" && !has_body) {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (method == "GET" || method == "DELETE") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (method == "POST" || method == "PUT" || method == "PATCH" ||
        (has_body && method != "HEAD")) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnRead);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      if (method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }

    CURLcode code = curl_easy_perform(h);
    Release(std::move(handle));
    if (code != CURLE_OK) {
      if (t.callback_error) return Fail(*t.callback_error);
      std::string detail = errbuf[0] ? std::string(Trim(errbuf)) : curl_easy_strerror(code);
      if (code == CURLE_PARTIAL_FILE) detail = "truncated body: " + detail;
      return Fail(ErrnoFor(code), request.method + " " + request.url + ": " + detail);
    }
    if (!t.saw_status)
      return Fail(ECONNRESET, request.method + " " + request.url + ": no status line");
    return std::move(t.response);
  }

 private:
  // curl takes and gives back a share lock in two separate callbacks: not checkable.
  static void Lock(CURL*, curl_lock_data data, curl_lock_access,
                   void* user) HOIST_NO_THREAD_SAFETY_ANALYSIS {
    static_cast<CurlTransport*>(user)->share_mu_[static_cast<size_t>(data) % kLocks].Lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) HOIST_NO_THREAD_SAFETY_ANALYSIS {
    static_cast<CurlTransport*>(user)->share_mu_[static_cast<size_t>(data) % kLocks].Unlock();
  }

  EasyHandle Acquire() {
    {
      MutexLock lock(pool_mu_);
      if (!idle_.empty()) {
        EasyHandle h = std::move(idle_.back());
        idle_.pop_back();
        return h;
      }
    }
    return EasyHandle(curl_easy_init());
  }

  void Release(EasyHandle h) {
    MutexLock lock(pool_mu_);
    if (idle_.size() < options_.max_idle_handles) idle_.push_back(std::move(h));
  }

  static constexpr size_t kLocks = CURL_LOCK_DATA_LAST;
  CurlTransportOptions options_;
  CURLSH* share_ = nullptr;
  Mutex share_mu_[kLocks];
  Mutex pool_mu_;
  std::vector<EasyHandle> idle_ HOIST_GUARDED_BY(pool_mu_);
};

}  // namespace

FreshConnections::FreshConnections() : previous_(t_fresh_connections) {
  t_fresh_connections = true;
}
FreshConnections::~FreshConnections() { t_fresh_connections = previous_; }

Result<std::unique_ptr<HttpTransport>> NewCurlTransport(CurlTransportOptions options) {
  auto transport = std::make_unique<CurlTransport>(std::move(options));
  HOIST_RETURN_IF_ERROR(transport->Init());
  return std::unique_ptr<HttpTransport>(std::move(transport));
}

}  // namespace hoist
