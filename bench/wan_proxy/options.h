// The command line of wan_proxy (bench/wan_proxy/wan_proxy.cc), parsed into ProxyOptions.
//
//   wan_proxy --upstream HOST:PORT [--listen HOST:PORT] [--rtt-ms MS] [--rate RATE]
//             [--port-file FILE] [--no-handshake]
//
// --listen defaults to 127.0.0.1:0 (port 0: the kernel picks one). --rtt-ms is the round-trip
// time to add (a decimal number, default 0); each direction gets half. --rate is the bandwidth
// of each direction of each connection, tc's units: NUMBER followed by bit, kbit, mbit or gbit
// (bits per second, powers of 1000) or bps, kbps, mbps, gbps (bytes per second); "0" or
// "unlimited" (the default) means no cap. --no-handshake drops the extra RTT a new connection
// pays before its first bytes reach the upstream. `--flag=value` works too.
//
// Errors: anything malformed or missing is EINVAL with a one-line message naming the flag; the
// program prints it and exits 2. "--help" is reported as help_requested, not an error.
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist::wan {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::string port;  // decimal, 0-65535
};

struct ProxyOptions {
  HostPort listen{"127.0.0.1", "0"};
  HostPort upstream;
  std::chrono::nanoseconds rtt{0};
  uint64_t bytes_per_second = 0;  // 0: unlimited
  std::string port_file;          // empty: none
  bool handshake = true;
  bool help_requested = false;
};

// "127.0.0.1:8080", "localhost:0", "[::1]:5000".
Result<HostPort> ParseHostPort(std::string_view text);
// "200mbit" -> 25000000 bytes/s; "0" or "unlimited" -> 0.
Result<uint64_t> ParseRate(std::string_view text);
// args excludes argv[0].
Result<ProxyOptions> ParseProxyOptions(const std::vector<std::string>& args);

// The usage text for --help.
const char* ProxyUsage();

}  // namespace hoist::wan
