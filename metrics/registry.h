// A small Prometheus metrics registry: counters, gauges and histograms (fixed bucket bounds in
// seconds), with labels, rendered in the text exposition format 0.0.4 for GET /metrics
// (http_server.h).
//
//   auto& requests = metrics::Global().Counter("hoist_x_total", "What it counts.", {"host"});
//   requests.With({"registry.example:5000"}).Add(1);   // look the child up once, keep it
//
// Families: one name, HELP text, TYPE and label names. Children (one per label-value tuple) are
// made on first use and live as long as the registry, so a reference to one can be kept and
// updated without any lock. Counter/Gauge/Histogram updates are relaxed atomics (no lock, no
// allocation); With() takes the family's mutex (map lookup).
//
// Collectors: callbacks run at each Render (a scrape) that write whole families from values
// kept elsewhere (a mount's MountStats). They write through Exposition, which emits the HELP and
// TYPE lines and the samples with exact formatting.
//
// Format (https://prometheus.io/docs/instrumenting/exposition_formats/, 0.0.4): for each family
// "# HELP name text" (backslash and newline escaped), "# TYPE name counter|gauge|histogram",
// then one line per sample, `name{l1="v1",l2="v2"} value` (label values escape backslash,
// double quote and newline); children sorted by label values. A histogram child writes
// name_bucket{...,le="B"} for every bound B (cumulative) and le="+Inf", then name_sum and
// name_count. Integral values print as integers, others in the shortest form that reads back
// exactly (std::to_chars), +Inf/-Inf/NaN as such. Families appear in registration order, the
// collectors' after them.
//
// Thread-safety: everything is thread-safe. Render may run while others update: each sample is
// exact, the exposition is not one instant (a histogram's _count is read before its buckets, and
// may trail them by in-flight observations).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"

namespace hoist::metrics {

enum class Type { kCounter, kGauge, kHistogram };

// Writes exposition text. Families must be whole: Header, then that family's samples.
class Exposition {
 public:
  void Header(std::string_view name, std::string_view help, Type type);
  // `labels` are (name, value) pairs, in order.
  void Sample(std::string_view name,
              std::span<const std::pair<std::string_view, std::string_view>> labels, double value);
  void Sample(std::string_view name, double value) { Sample(name, {}, value); }
  // A histogram child from bounds (seconds, increasing), per-bucket counts (bounds.size() + 1,
  // the last one above every bound; NOT cumulative), the sum (seconds) and count.
  void Histogram(std::string_view name,
                 std::span<const std::pair<std::string_view, std::string_view>> labels,
                 std::span<const double> bounds, std::span<const uint64_t> counts, double sum);
  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Formats a sample value as the exposition text does.
std::string FormatValue(double value);
// Escapes a label value (\ " newline) / a HELP text (\ newline).
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view help);

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Observations are durations, kept in nanoseconds (the sum is exact); bounds are in seconds.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds_seconds);
  void Observe(std::chrono::nanoseconds d);
  // Per-bucket counts (not cumulative), bounds().size() + 1 of them.
  std::vector<uint64_t> Counts() const;
  double SumSeconds() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bounds_ns_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_ns_{0};
};

using LabelValues = std::vector<std::string>;

// A family of one metric type. With() returns the child for these label values (made on first
// use; the number of values must equal the number of label names, else the call aborts: a
// programming error).
template <class M>
class Family {
 public:
  M& With(const LabelValues& values);
  M& With(std::initializer_list<std::string_view> values) {
    return With(LabelValues(values.begin(), values.end()));
  }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}
  void Write(Exposition& out) const;

  const std::string name_, help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable Mutex mu_;
  std::map<LabelValues, std::unique_ptr<M>> children_ HOIST_GUARDED_BY(mu_);
};

// Default bucket bounds (seconds): registry fetches (1 ms .. 60 s) and FUSE operations
// (10 us .. 10 s).
std::span<const double> FetchLatencyBounds();
std::span<const double> FuseLatencyBounds();

class Registry {
 public:
  using Collector = std::function<void(Exposition&)>;

  // Registering a name twice returns the first family (its type, help and labels must match:
  // else the call aborts, a programming error).
  Family<metrics::Counter>& Counter(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names = {});
  Family<metrics::Gauge>& Gauge(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {});
  Family<metrics::Histogram>& Histogram(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names,
                                        std::span<const double> bounds_seconds);

  // Adds a collector; it runs at every Render until the returned id is passed to Remove.
  uint64_t AddCollector(Collector collector);
  void RemoveCollector(uint64_t id);

  std::string Render() const;

 private:
  struct Entry {
    Type type;
    std::string name, help;
    std::vector<std::string> label_names;
    std::unique_ptr<Family<metrics::Counter>> counter;
    std::unique_ptr<Family<metrics::Gauge>> gauge;
    std::unique_ptr<Family<metrics::Histogram>> histogram;
  };
  Entry& Find(Type type, std::string_view name, std::string_view help,
              const std::vector<std::string>& label_names) HOIST_REQUIRES(mu_);

  mutable Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ HOIST_GUARDED_BY(mu_);
  std::map<uint64_t, Collector> collectors_ HOIST_GUARDED_BY(mu_);
  uint64_t next_collector_ HOIST_GUARDED_BY(mu_) = 1;
};

// The process's registry (what the daemons serve).
Registry& Global();

}  // namespace hoist::metrics
