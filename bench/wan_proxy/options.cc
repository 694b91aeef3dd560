#include "bench/wan_proxy/options.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace hoist::wan {
namespace {

std::unexpected<Error> Invalid(std::string message) { return Fail(EINVAL, std::move(message)); }

// A finite decimal number >= 0 spanning all of `text`.
std::optional<double> ParseNonNegative(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  // strtod accepts "inf", "nan", hex and leading spaces; only plain decimals are meant here.
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  }
  return v;
}

}  // namespace

Result<HostPort> ParseHostPort(std::string_view text) {
  HostPort hp;
  std::string_view port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Invalid("'" + std::string(text) + "' is not [HOST]:PORT");
    }
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Invalid("'" + std::string(text) + "' is not HOST:PORT");
    }
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return Invalid("'" + std::string(text) + "': port must be 0-65535");
  }
  hp.port = std::to_string(value);
  return hp;
}

Result<uint64_t> ParseRate(std::string_view text) {
  if (text == "unlimited") return 0;
  struct Unit {
    std::string_view suffix;
    double bytes_per_unit;
  };
  // Longest suffixes first: "kbps" before "bps", "kbit" before "bit".
  static constexpr Unit kUnits[] = {
      {"kbit", 1e3 / 8}, {"mbit", 1e6 / 8}, {"gbit", 1e9 / 8}, {"kbps", 1e3},
      {"mbps", 1e6},     {"gbps", 1e9},     {"bit", 1.0 / 8},  {"bps", 1.0},
  };
  std::string lower;
  for (char c : text) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  for (const Unit& u : kUnits) {
    if (!std::string_view(lower).ends_with(u.suffix)) continue;
    const auto number =
        ParseNonNegative(std::string_view(lower).substr(0, lower.size() - u.suffix.size()));
    if (!number) break;
    const double bytes = *number * u.bytes_per_unit;
    if (bytes < 1 || bytes > 1e15) {
      return Invalid("--rate '" + std::string(text) + "' is out of range (1 byte/s to 8 Pbit/s)");
    }
    return static_cast<uint64_t>(std::llround(bytes));
  }
  if (lower == "0") return 0;
  return Invalid("--rate '" + std::string(text) +
                 "' is not NUMBER followed by bit, kbit, mbit, gbit, bps, kbps, mbps or gbps");
}

Result<ProxyOptions> ParseProxyOptions(const std::vector<std::string>& args) {
  ProxyOptions o;
  bool have_upstream = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (flag.starts_with("--")) {
      const size_t eq = flag.find('=');
      if (eq != std::string::npos) {
        inline_value = flag.substr(eq + 1);
        flag.resize(eq);
      }
    }
    if (flag == "--help" || flag == "-h") {
      o.help_requested = true;
      return o;
    }
    if (flag == "--no-handshake") {
      if (inline_value) return Invalid("--no-handshake takes no value");
      o.handshake = false;
      continue;
    }
    const bool takes_value = flag == "--listen" || flag == "--upstream" || flag == "--rtt-ms" ||
                             flag == "--rate" || flag == "--port-file";
    if (!takes_value) return Invalid("unknown argument '" + args[i] + "' (see --help)");
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) return Invalid(flag + " needs a value");
      value = args[++i];
    }
    if (flag == "--listen") {
      auto hp = ParseHostPort(value);
      if (!hp) return Fail(hp.error().Context("--listen"));
      o.listen = *hp;
    } else if (flag == "--upstream") {
      auto hp = ParseHostPort(value);
      if (!hp) return Fail(hp.error().Context("--upstream"));
      o.upstream = *hp;
      have_upstream = true;
    } else if (flag == "--rtt-ms") {
      const auto ms = ParseNonNegative(value);
      if (!ms || *ms > 3.6e6) return Invalid("--rtt-ms '" + value + "' is not a number of ms");
      o.rtt = std::chrono::nanoseconds(std::llround(*ms * 1e6));
    } else if (flag == "--rate") {
      HOIST_ASSIGN_OR_RETURN(o.bytes_per_second, ParseRate(value));
    } else {
      if (value.empty()) return Invalid("--port-file needs a file name");
      o.port_file = value;
    }
  }
  if (!have_upstream) return Invalid("--upstream HOST:PORT is required");
  if (o.upstream.port == "0") return Invalid("--upstream: port 0 cannot be connected to");
  return o;
}

const char* ProxyUsage() {
  return "usage: wan_proxy --upstream HOST:PORT [--listen HOST:PORT] [--rtt-ms MS] [--rate RATE]\n"
         "                 [--port-file FILE] [--no-handshake]\n"
         "  Forwards every connection to --upstream, each direction delayed by RTT/2 and paced\n"
         "  at RATE (per connection, per direction; e.g. 200mbit, 1gbit, 10mbps; default\n"
         "  unlimited). A new connection's first bytes wait one more RTT (the TCP handshake)\n"
         "  unless --no-handshake. Listen port 0 picks a free port; it is printed on stdout and\n"
         "  written to --port-file. SIGINT/SIGTERM stop it.\n";
}

}  // namespace hoist::wan
