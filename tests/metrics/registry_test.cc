// The exposition text, line by line: HELP/TYPE, label order and escaping, histogram buckets
// (cumulative, le bounds, +Inf, _sum, _count), value formatting, collectors.
#include "metrics/registry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace hoist::metrics {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(MetricsRegistry, CounterWithLabelsSortedByValue) {
  Registry r;
  auto& c = r.Counter("hoist_test_total", "Things counted.", {"host", "kind"});
  c.With({"b:443", "x"}).Add(2);
  c.With({"a:80", "y"}).Add(1);
  c.With({"b:443", "x"}).Add(3);
  EXPECT_EQ(r.Render(),
            "# HELP hoist_test_total Things counted.\n"
            "# TYPE hoist_test_total counter\n"
            "hoist_test_total{host=\"a:80\",kind=\"y\"} 1\n"
            "hoist_test_total{host=\"b:443\",kind=\"x\"} 5\n");
}

TEST(MetricsRegistry, GaugeWithoutLabelsAndEmptyFamilyListed) {
  Registry r;
  r.Gauge("hoist_g", "A gauge.").With({}).Set(-7);
  r.Counter("hoist_unused_total", "Never incremented.", {"host"});
  EXPECT_EQ(r.Render(),
            "# HELP hoist_g A gauge.\n"
            "# TYPE hoist_g gauge\n"
            "hoist_g -7\n"
            "# HELP hoist_unused_total Never incremented.\n"
            "# TYPE hoist_unused_total counter\n");
}

TEST(MetricsRegistry, EscapesLabelValuesAndHelp) {
  Registry r;
  r.Counter("hoist_e_total", "Back\\slash and\nnewline \"kept\".", {"v"})
      .With({"a\\b\"c\nd"})
      .Add();
  EXPECT_EQ(r.Render(),
            "# HELP hoist_e_total Back\\\\slash and\\nnewline \"kept\".\n"
            "# TYPE hoist_e_total counter\n"
            "hoist_e_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  const double bounds[] = {0.001, 0.01, 0.1};
  auto& h = r.Histogram("hoist_h_seconds", "Durations.", {"op"}, bounds);
  auto& read = h.With({"read"});
  read.Observe(microseconds(1000));  // == 1 ms: le="0.001" (upper bound inclusive)
  read.Observe(microseconds(1001));  // 0.01 bucket
  read.Observe(milliseconds(50));    // 0.1 bucket
  read.Observe(milliseconds(2000));  // above every bound
  EXPECT_EQ(r.Render(),
            "# HELP hoist_h_seconds Durations.\n"
            "# TYPE hoist_h_seconds histogram\n"
            "hoist_h_seconds_bucket{op=\"read\",le=\"0.001\"} 1\n"
            "hoist_h_seconds_bucket{op=\"read\",le=\"0.01\"} 2\n"
            "hoist_h_seconds_bucket{op=\"read\",le=\"0.1\"} 3\n"
            "hoist_h_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
            "hoist_h_seconds_sum{op=\"read\"} 2.052001\n"
            "hoist_h_seconds_count{op=\"read\"} 4\n");
}

TEST(MetricsRegistry, HistogramWithoutLabels) {
  Registry r;
  const double bounds[] = {1};
  r.Histogram("hoist_h2_seconds", "D.", {}, bounds).With({}).Observe(milliseconds(1500));
  EXPECT_EQ(r.Render(),
            "# HELP hoist_h2_seconds D.\n"
            "# TYPE hoist_h2_seconds histogram\n"
            "hoist_h2_seconds_bucket{le=\"1\"} 0\n"
            "hoist_h2_seconds_bucket{le=\"+Inf\"} 1\n"
            "hoist_h2_seconds_sum 1.5\n"
            "hoist_h2_seconds_count 1\n");
}

TEST(MetricsRegistry, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901234), "12345678901234");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(1e-05), "1e-05");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsRegistry, SameNameReturnsSameFamily) {
  Registry r;
  auto& a = r.Counter("hoist_same_total", "Same.", {"x"});
  auto& b = r.Counter("hoist_same_total", "Same.", {"x"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.With({"1"}), &b.With({"1"}));
}

TEST(MetricsRegistryDeathTest, WrongLabelCountAborts) {
  Registry r;
  auto& c = r.Counter("hoist_l_total", "L.", {"a", "b"});
  EXPECT_DEATH(c.With({"only one"}), "hoist_l_total: 1 label values for 2 labels");
}

TEST(MetricsRegistry, CollectorsRunAtEachRenderUntilRemoved) {
  Registry r;
  int calls = 0;
  const uint64_t id = r.AddCollector([&](Exposition& out) {
    ++calls;
    out.Header("hoist_c", "Collected.", Type::kGauge);
    const std::pair<std::string_view, std::string_view> labels[] = {{"state", "all"}};
    out.Sample("hoist_c", labels, calls);
  });
  EXPECT_EQ(r.Render(),
            "# HELP hoist_c Collected.\n# TYPE hoist_c gauge\nhoist_c{state=\"all\"} 1\n");
  EXPECT_EQ(r.Render(),
            "# HELP hoist_c Collected.\n# TYPE hoist_c gauge\nhoist_c{state=\"all\"} 2\n");
  r.RemoveCollector(id);
  EXPECT_EQ(r.Render(), "");
  EXPECT_EQ(calls, 2);
}

TEST(MetricsRegistry, ConcurrentUpdatesAreExact) {
  Registry r;
  auto& c = r.Counter("hoist_cc_total", "C.", {"t"});
  const double bounds[] = {0.5};
  auto& h = r.Histogram("hoist_hh_seconds", "H.", {}, bounds).With({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.With({"x"}).Add();
        h.Observe(microseconds(1));
        if (i % 1000 == 0) (void)r.Render();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.With({"x"}).value(), 40000u);
  EXPECT_EQ(h.Counts(), (std::vector<uint64_t>{40000, 0}));
  EXPECT_DOUBLE_EQ(h.SumSeconds(), 0.04);
}

}  // namespace
}  // namespace hoist::metrics
