// MetricsTransport: wraps an HttpTransport and counts every round trip in the process's metrics
// registry (metrics/registry.h), labelled by the host actually contacted: the request URL's
// "host:port" (port always explicit), so a mirror, a redirect target (a CDN) and the registry
// each get their own series.
//
//   hoist_fetch_requests_total{host}        requests sent (token, manifest, blob, ... every one)
//   hoist_fetch_bytes_total{host}           body bytes of 2xx responses (what was fetched)
//   hoist_fetch_duration_seconds{host}      histogram of round-trip time (send to last byte)
//   hoist_fetch_errors_total{host,kind}     kind: "network" (no response: reset, timeout, TLS,
//                                           ...), "http_4xx", "http_5xx" (the response status),
//                                           "bad_bytes" (a 2xx whose bytes failed a digest
//                                           check; counted by the reader, CountBadBytes)
//
// RegistryClient::CreateDefault wraps its transport in one, so every daemon counts its fetches.
// Thread-safety: as the inner transport.
#pragma once

#include <memory>
#include <string_view>

#include "fetcher/http.h"

namespace hoist {

std::shared_ptr<HttpTransport> NewMetricsTransport(std::shared_ptr<HttpTransport> inner);

// Counts hoist_fetch_errors_total{host,kind="bad_bytes"} for the host of `url` (the URL that
// answered, ReadRoute::served_url), labelled as the transport labels it. "" counts nothing.
void CountBadBytes(std::string_view url);

}  // namespace hoist
