#include "fetcher/metrics_transport.h"

#include <chrono>
#include <optional>

#include "fetcher/url.h"
#include "metrics/registry.h"

namespace hoist {
namespace {

struct FetchFamilies {
  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Counter>& bytes;
  metrics::Family<metrics::Histogram>& latency;
  metrics::Family<metrics::Counter>& errors;
};

FetchFamilies& Families() {
  static FetchFamilies f{
      metrics::Global().Counter("hoist_fetch_requests_total",
                                "HTTP requests sent to a registry or mirror, by host contacted.",
                                {"host"}),
      metrics::Global().Counter("hoist_fetch_bytes_total",
                                "Body bytes of successful (2xx) responses, by host contacted.",
                                {"host"}),
      metrics::Global().Histogram("hoist_fetch_duration_seconds",
                                  "HTTP round-trip time, request to last body byte, by host.",
                                  {"host"}, metrics::FetchLatencyBounds()),
      metrics::Global().Counter(
          "hoist_fetch_errors_total",
          "Failed HTTP requests by host and kind (network, http_4xx, http_5xx, bad_bytes).",
          {"host", "kind"}),
  };
  return f;
}

// "host:port" (port always explicit) of a URL.
std::string HostLabel(std::string_view text) {
  auto url = Url::Parse(text);
  return url ? url->host + ":" + std::to_string(url->port) : "invalid";
}

class MetricsTransport : public HttpTransport {
 public:
  explicit MetricsTransport(std::shared_ptr<HttpTransport> inner) : inner_(std::move(inner)) {
    (void)Families();  // the families are listed from the first scrape on, even before use
  }

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    uint64_t sunk = 0;
    std::optional<HttpRequest> counted = WithCountingSink(request, &sunk);
    const auto start = std::chrono::steady_clock::now();
    Result<HttpResponse> result = inner_->RoundTrip(counted ? *counted : request);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const std::string host = HostLabel(request.url);
    FetchFamilies& f = Families();
    f.requests.With({host}).Add();
    f.latency.With({host}).Observe(elapsed);
    if (!result) {
      f.errors.With({host, "network"}).Add();
    } else if (result->status >= 200 && result->status < 300) {
      f.bytes.With({host}).Add(sunk + result->body.size());
    } else if (result->status >= 500) {
      f.errors.With({host, "http_5xx"}).Add();
    } else if (result->status >= 400) {
      f.errors.With({host, "http_4xx"}).Add();
    }
    return result;
  }

 private:
  std::shared_ptr<HttpTransport> inner_;
};

}  // namespace

std::shared_ptr<HttpTransport> NewMetricsTransport(std::shared_ptr<HttpTransport> inner) {
  return std::make_shared<MetricsTransport>(std::move(inner));
}

void CountBadBytes(std::string_view url) {
  if (url.empty()) return;
  Families().errors.With({HostLabel(url), "bad_bytes"}).Add();
}

}  // namespace hoist
