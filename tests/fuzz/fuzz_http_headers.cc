// libFuzzer target: the small response-header parsers of fetcher/, all on the same input:
// ParseContentRange, ParseRetryAfter / ParseHttpDate, ParseLinkNext (against a fixed base URL),
// Url::Parse. If the input holds a newline, the text before it is also used as a base URL and
// the text after it as a reference (ResolveUrl, ParseLinkNext, SameOrigin).
// Checks: a parsed Content-Range has first <= last < total; Retry-After is never negative; a
// parsed URL is http(s) with a path starting with '/' and a port in 1..65535.
#include <cstddef>
#include <cstdint>

#include "fetcher/content_range.h"
#include "fetcher/link_header.h"
#include "fetcher/retry_after.h"
#include "fetcher/url.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int64_t kNow = 1700000000;  // fixed, so runs reproduce

void CheckUrl(std::string_view text) {
  auto url = hoist::Url::Parse(text);
  if (!url) return;
  FUZZ_CHECK(url->scheme == "http" || url->scheme == "https");
  FUZZ_CHECK(!url->path_and_query.empty() && url->path_and_query[0] == '/');
  FUZZ_CHECK(url->port > 0 && url->port <= 65535);
  (void)url->String();
  (void)url->Origin();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  std::string_view in = hoist::fuzz::AsView(data, size);

  auto range = hoist::ParseContentRange(in);
  if (range) {
    FUZZ_CHECK(range->first.has_value() == range->last.has_value());
    if (range->first) FUZZ_CHECK(*range->first <= *range->last);
    if (range->first && range->total) FUZZ_CHECK(*range->last < *range->total);
  }
  auto after = hoist::ParseRetryAfter(in, kNow);
  if (after) FUZZ_CHECK(after->count() >= 0);
  (void)hoist::ParseHttpDate(in);
  (void)hoist::ParseLinkNext(in, "https://registry.example/v2/library/x/tags/list?n=2");
  CheckUrl(in);
  (void)hoist::QueryEscape(in);

  size_t nl = in.find('\n');
  if (nl != std::string_view::npos) {
    std::string_view base = in.substr(0, nl);
    std::string_view rest = in.substr(nl + 1);
    auto resolved = hoist::ResolveUrl(base, rest);
    if (resolved) CheckUrl(*resolved);
    auto next = hoist::ParseLinkNext(rest, base);
    (void)next;
    (void)hoist::SameOrigin(base, rest);
    (void)hoist::AppendQuery(base, "last", rest);
  }
  return 0;
}
