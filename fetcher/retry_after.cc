#include "fetcher/retry_after.h"

#include <cctype>
#include <charconv>
#include <string>
#include <vector>

namespace hoist {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool Number(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

int Month(std::string_view m) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i + 1;
  }
  return 0;
}

// Days since 1970-01-01 for a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool ClockTime(std::string_view t, int64_t* h, int64_t* m, int64_t* s) {
  if (t.size() != 8 || t[2] != ':' || t[5] != ':') return false;
  return Number(t.substr(0, 2), h) && Number(t.substr(3, 2), m) && Number(t.substr(6, 2), s) &&
         *h < 24 && *m < 60 && *s <= 60;
}

}  // namespace

Result<int64_t> ParseHttpDate(std::string_view text) {
  auto bad = [&] {
    return Fail(EINVAL, "malformed HTTP date \"" + std::string(text.substr(0, 80)) + "\"");
  };
  std::vector<std::string_view> f = Split(Trim(text));
  int64_t day = 0, year = 0, h = 0, mi = 0, s = 0;
  int month = 0;
  if (f.size() == 6 && f[0].ends_with(",") && f[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    month = Month(f[2]);
    if (!Number(f[1], &day) || !month || !Number(f[3], &year) || !ClockTime(f[4], &h, &mi, &s)) {
      return bad();
    }
  } else if (f.size() == 4 && f[0].ends_with(",") && f[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    std::string_view d = f[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-') return bad();
    month = Month(d.substr(3, 3));
    if (!Number(d.substr(0, 2), &day) || !month || !Number(d.substr(7, 2), &year) ||
        !ClockTime(f[2], &h, &mi, &s)) {
      return bad();
    }
    year += year < 70 ? 2000 : 1900;
  } else if (f.size() == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    month = Month(f[1]);
    if (!month || !Number(f[2], &day) || !ClockTime(f[3], &h, &mi, &s) || !Number(f[4], &year)) {
      return bad();
    }
  } else {
    return bad();
  }
  if (day < 1 || day > 31 || year < 1970 || year > 9999) return bad();
  return DaysFromCivil(year, month, day) * 86400 + h * 3600 + mi * 60 + s;
}

Result<std::chrono::seconds> ParseRetryAfter(std::string_view header, int64_t now_unix_seconds) {
  std::string_view v = Trim(header);
  int64_t seconds = 0;
  if (Number(v, &seconds)) return std::chrono::seconds(seconds);
  auto date = ParseHttpDate(v);
  if (!date) {
    return Fail(EINVAL, "malformed Retry-After \"" + std::string(v.substr(0, 80)) + "\"");
  }
  int64_t delta = *date - now_unix_seconds;
  return std::chrono::seconds(delta < 0 ? 0 : delta);
}

}  // namespace hoist
