#include "metrics/registry.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace hoist::metrics {
namespace {

constexpr double kFetchBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                   0.5,   1,      2.5,   5,    10,    30,   60};
constexpr double kFuseBounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                  0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25,
                                  0.5,     1,        2.5,     5,      10};

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::abort();
}

using LabelPairs = std::vector<std::pair<std::string_view, std::string_view>>;

LabelPairs Pairs(const std::vector<std::string>& names, const LabelValues& values) {
  LabelPairs pairs;
  for (size_t i = 0; i < names.size(); ++i) pairs.emplace_back(names[i], values[i]);
  return pairs;
}

void AppendLabels(std::string& out,
                  std::span<const std::pair<std::string_view, std::string_view>> labels) {
  if (labels.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    out += EscapeLabelValue(value);
    out += '"';
  }
  out += '}';
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Exposition::Header(std::string_view name, std::string_view help, Type type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += EscapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += TypeName(type);
  out_ += '\n';
}

void Exposition::Sample(std::string_view name,
                        std::span<const std::pair<std::string_view, std::string_view>> labels,
                        double value) {
  out_ += name;
  AppendLabels(out_, labels);
  out_ += ' ';
  out_ += FormatValue(value);
  out_ += '\n';
}

void Exposition::Histogram(std::string_view name,
                           std::span<const std::pair<std::string_view, std::string_view>> labels,
                           std::span<const double> bounds, std::span<const uint64_t> counts,
                           double sum) {
  const std::string bucket = std::string(name) + "_bucket";
  LabelPairs with_le(labels.begin(), labels.end());
  with_le.emplace_back("le", "");
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
    with_le.back().second = le;
    Sample(bucket, with_le, static_cast<double>(cumulative));
  }
  Sample(std::string(name) + "_sum", labels, sum);
  Sample(std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

Histogram::Histogram(std::span<const double> bounds_seconds)
    : bounds_(bounds_seconds.begin(), bounds_seconds.end()),
      counts_(new std::atomic<uint64_t>[bounds_seconds.size() + 1]) {
  for (double b : bounds_) bounds_ns_.push_back(static_cast<int64_t>(std::llround(b * 1e9)));
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(std::chrono::nanoseconds d) {
  const int64_t ns = d.count() < 0 ? 0 : d.count();
  size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i]) ++i;  // le: value <= bound
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::SumSeconds() const {
  return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

template <class M>
M& Family<M>::With(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    Die(name_ + ": " + std::to_string(values.size()) + " label values for " +
        std::to_string(label_names_.size()) + " labels");
  }
  MutexLock lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<M> child;
    if constexpr (std::is_same_v<M, metrics::Histogram>) {
      child = std::make_unique<M>(bounds_);
    } else {
      child = std::make_unique<M>();
    }
    it = children_.emplace(values, std::move(child)).first;
  }
  return *it->second;
}

template <class M>
void Family<M>::Write(Exposition& out) const {
  MutexLock lock(mu_);
  for (const auto& [values, child] : children_) {
    const LabelPairs labels = Pairs(label_names_, values);
    if constexpr (std::is_same_v<M, metrics::Histogram>) {
      const std::vector<uint64_t> counts = child->Counts();
      out.Histogram(name_, labels, bounds_, counts, child->SumSeconds());
    } else {
      out.Sample(name_, labels, static_cast<double>(child->value()));
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

std::span<const double> FetchLatencyBounds() { return kFetchBounds; }
std::span<const double> FuseLatencyBounds() { return kFuseBounds; }

Registry::Entry& Registry::Find(Type type, std::string_view name, std::string_view help,
                                const std::vector<std::string>& label_names) {
  for (auto& e : entries_) {
    if (e->name != name) continue;
    if (e->type != type || e->help != help || e->label_names != label_names) {
      Die(std::string(name) + ": registered again with another type, help or labels");
    }
    return *e;
  }
  auto e = std::make_unique<Entry>();
  e->type = type;
  e->name = name;
  e->help = help;
  e->label_names = label_names;
  entries_.push_back(std::move(e));
  return *entries_.back();
}

Family<Counter>& Registry::Counter(std::string_view name, std::string_view help,
                                   std::vector<std::string> label_names) {
  MutexLock lock(mu_);
  Entry& e = Find(Type::kCounter, name, help, label_names);
  if (!e.counter) {
    e.counter.reset(new Family<metrics::Counter>(std::string(name), std::string(help),
                                                 std::move(label_names), {}));
  }
  return *e.counter;
}

Family<Gauge>& Registry::Gauge(std::string_view name, std::string_view help,
                               std::vector<std::string> label_names) {
  MutexLock lock(mu_);
  Entry& e = Find(Type::kGauge, name, help, label_names);
  if (!e.gauge) {
    e.gauge.reset(new Family<metrics::Gauge>(std::string(name), std::string(help),
                                             std::move(label_names), {}));
  }
  return *e.gauge;
}

Family<Histogram>& Registry::Histogram(std::string_view name, std::string_view help,
                                       std::vector<std::string> label_names,
                                       std::span<const double> bounds_seconds) {
  MutexLock lock(mu_);
  Entry& e = Find(Type::kHistogram, name, help, label_names);
  if (!e.histogram) {
    e.histogram.reset(new Family<metrics::Histogram>(
        std::string(name), std::string(help), std::move(label_names),
        std::vector<double>(bounds_seconds.begin(), bounds_seconds.end())));
  }
  return *e.histogram;
}

uint64_t Registry::AddCollector(Collector collector) {
  MutexLock lock(mu_);
  const uint64_t id = next_collector_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

void Registry::RemoveCollector(uint64_t id) {
  MutexLock lock(mu_);
  collectors_.erase(id);
}

std::string Registry::Render() const {
  Exposition out;
  MutexLock lock(mu_);
  for (const auto& e : entries_) {
    out.Header(e->name, e->help, e->type);
    if (e->counter) e->counter->Write(out);
    if (e->gauge) e->gauge->Write(out);
    if (e->histogram) e->histogram->Write(out);
  }
  for (const auto& [id, collector] : collectors_) collector(out);
  return out.Take();
}

Registry& Global() {
  static Registry* registry = new Registry();  // never destroyed: used until exit
  return *registry;
}

}  // namespace hoist::metrics
