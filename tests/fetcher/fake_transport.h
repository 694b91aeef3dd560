// Test seam fakes: a scripted HttpTransport and a clock that records sleeps instead of sleeping.
//
// FakeTransport follows the HttpTransport contract (2xx bodies go to the sink after on_head,
// others into `body`), and can break a transfer part-way: `reply.error` with
// `reply.deliver_before_error` bytes of body handed to the sink first.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fetcher/http.h"
#include "fetcher/retry.h"

namespace hoist::testing_fakes {

struct FakeReply {
  int status = 200;
  HttpHeaderList headers;
  std::string body;
  std::optional<Error> error;       // a transport failure
  size_t deliver_before_error = 0;  // body bytes the sink sees before the failure
};

struct RecordedRequest {
  std::string method;
  std::string url;
  HttpHeaderList headers;
  std::string body;
  HttpTlsOptions tls;
  std::optional<std::string> Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

class FakeTransport : public HttpTransport {
 public:
  using Handler = std::function<FakeReply(const RecordedRequest&)>;
  explicit FakeTransport(Handler handler) : handler_(std::move(handler)) {}

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    RecordedRequest rec{request.method, request.url, request.headers, request.body, request.tls};
    if (request.body_reader) {
      rec.body.clear();
      char buf[4096];
      while (rec.body.size() < request.body_size) {
        auto got = request.body_reader(buf, sizeof(buf));
        if (!got) return Fail(got.error());
        if (*got == 0) break;
        rec.body.append(buf, *got);
      }
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(rec);
    }
    FakeReply reply = handler_(rec);
    HttpResponse resp;
    resp.status = reply.status;
    for (auto& [k, v] : reply.headers) {
      std::string lower = k;
      for (char& c : lower) c = static_cast<char>(std::tolower(c));
      resp.headers.emplace_back(lower, v);
    }
    bool ok = reply.status >= 200 && reply.status < 300;
    std::string body = request.method == "HEAD" ? std::string() : reply.body;
    if (reply.error) body = body.substr(0, reply.deliver_before_error);
    if (ok && request.body_sink && !body.empty()) {
      if (request.on_head) HOIST_RETURN_IF_ERROR(request.on_head(resp));
      // Deliver in small pieces, as a network would.
      for (size_t i = 0; i < body.size(); i += 7) {
        HOIST_RETURN_IF_ERROR(request.body_sink(std::string_view(body).substr(i, 7)));
      }
    } else {
      resp.body = body;
    }
    if (reply.error) return Fail(*reply.error);
    return resp;
  }

  std::vector<RecordedRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<RecordedRequest> RequestsTo(std::string_view url_prefix) {
    std::vector<RecordedRequest> out;
    for (auto& r : requests()) {
      if (r.url.starts_with(url_prefix)) out.push_back(r);
    }
    return out;
  }

 private:
  Handler handler_;
  std::mutex mu_;
  std::vector<RecordedRequest> requests_;
};

class FakeClock : public Clock {
 public:
  TimePoint Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void SleepFor(std::chrono::milliseconds d) override {
    std::lock_guard lock(mu_);
    sleeps_.push_back(d);
    now_ += d;
  }
  int64_t UnixSeconds() override { return 1700000000; }
  std::vector<std::chrono::milliseconds> sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  TimePoint now_{};
  std::vector<std::chrono::milliseconds> sleeps_;
};

}  // namespace hoist::testing_fakes
