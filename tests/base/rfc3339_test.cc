// RFC 3339: the forms TOCs, configs and token servers write, the errors, and the round trip.
#include "base/rfc3339.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

std::string Show(std::string_view text) {
  auto t = ParseRfc3339(text);
  if (!t) return "error " + std::to_string(t.error().code()) + ": " + t.error().message();
  return std::to_string(t->first) + "." + std::to_string(t->second);
}

TEST(Rfc3339, ParsesZonesFractionsAndSeparators) {
  EXPECT_EQ(Show("1970-01-01T00:00:00Z"), "0.0");
  EXPECT_EQ(Show("2021-02-03T04:05:06.5Z"), "1612325106.500000000");
  EXPECT_EQ(Show("2021-02-03t04:05:06.123456789123z"), "1612325106.123456789");
  EXPECT_EQ(Show("2021-02-03 06:05:06+02:00"), "1612325106.0");
  EXPECT_EQ(Show("2021-02-02T23:05:06-05:00"), "1612325106.0");
  EXPECT_EQ(Show("1969-12-31T23:59:59Z"), "-1.0");
}

TEST(Rfc3339, RefusesWhatIsNotATime) {
  EXPECT_EQ(Show("2021-02-03T04:05:06"), "error 74: bad RFC 3339 time \"2021-02-03T04:05:06\"");
  EXPECT_EQ(Show("2021-02-03T04:05:06.5"), "error 74: RFC 3339 time without a zone");
  EXPECT_EQ(Show("2021-02-03T04:05:06.Z"), "error 74: bad RFC 3339 fraction");
  EXPECT_EQ(Show("2021-02-03T04:05:06+0200"), "error 74: bad RFC 3339 zone");
  EXPECT_EQ(Show("2021-13-03T04:05:06Z"), "error 74: bad RFC 3339 time \"2021-13-03T04:05:06Z\"");
  EXPECT_EQ(Show("2021-02-03T04:05:06Zjunk"), "error 74: trailing bytes after RFC 3339 time");
  EXPECT_EQ(Show(""), "error 74: bad RFC 3339 time \"\"");
}

TEST(Rfc3339, FormatsUtcAndRoundTrips) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1612325106, 500000000), "2021-02-03T04:05:06.5Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59Z");
  for (int64_t sec : {int64_t{0}, int64_t{951782400}, int64_t{4102444800}, int64_t{-86401}}) {
    for (uint32_t nsec : {0u, 1u, 999999999u}) {
      auto t = ParseRfc3339(FormatRfc3339(sec, nsec));
      ASSERT_TRUE(t.has_value()) << sec;
      EXPECT_EQ(t->first, sec);
      EXPECT_EQ(t->second, nsec);
    }
  }
}

}  // namespace
}  // namespace hoist
