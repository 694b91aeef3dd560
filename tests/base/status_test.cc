#include "base/status.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Fail(EINVAL, "odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  HOIST_ASSIGN_OR_RETURN(int h, Half(x));
  HOIST_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, MacrosPropagateErrnoAndMessage) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), EINVAL);
  EXPECT_EQ(r.error().message(), "odd: 3");
  EXPECT_EQ(r.error().Context("layer 2").message(), "layer 2: odd: 3");
}

TEST(StatusTest, ZeroCodeBecomesEio) { EXPECT_EQ(Error(0, "x").code(), EIO); }

}  // namespace
}  // namespace hoist
