#include "tools/cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "base/file_util.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

constexpr std::chrono::milliseconds kFrameInterval{100};

std::string ShortId(const std::string& id) {
  const size_t colon = id.find(':');
  std::string hex = colon == std::string::npos ? id : id.substr(colon + 1);
  return hex.substr(0, 12);
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

ProgressMode ChooseProgressMode(bool quiet, bool json) {
  if (json) return ProgressMode::kJson;
  if (quiet || !::isatty(STDERR_FILENO)) return ProgressMode::kNone;
  return ProgressMode::kTty;
}

ProgressDisplay::ProgressDisplay(ProgressMode mode, int tty_fd, FILE* json_out)
    : mode_(mode), tty_fd_(tty_fd), json_out_(json_out) {}

ProgressDisplay::~ProgressDisplay() { Finish(); }

int ProgressDisplay::Add(const std::string& id, uint64_t total) {
  if (mode_ == ProgressMode::kNone) return 0;
  MutexLock lock(mu_);
  Item item;
  item.id = id;
  item.total = total;
  items_.push_back(std::move(item));
  if (mode_ == ProgressMode::kJson) Event("start", items_.back());
  Tick(false);
  return static_cast<int>(items_.size() - 1);
}

void ProgressDisplay::AddTotal(int item, uint64_t n) {
  if (mode_ == ProgressMode::kNone) return;
  MutexLock lock(mu_);
  if (item < 0 || static_cast<size_t>(item) >= items_.size()) return;
  items_[item].total += n;
}

void ProgressDisplay::Advance(int item, uint64_t n) {
  if (mode_ == ProgressMode::kNone) return;
  MutexLock lock(mu_);
  if (item < 0 || static_cast<size_t>(item) >= items_.size()) return;
  Item& it = items_[item];
  it.current += n;
  it.moved = true;
  if (!it.done) it.status = "Copying";
  Tick(false);
}

void ProgressDisplay::Done(int item, std::string_view status) {
  if (mode_ == ProgressMode::kNone) return;
  MutexLock lock(mu_);
  if (item < 0 || static_cast<size_t>(item) >= items_.size()) return;
  Item& it = items_[item];
  if (it.done) return;
  it.done = true;
  it.status = std::string(status);
  if (it.current < it.total && status == "Done") it.current = it.total;
  it.moved = false;
  if (mode_ == ProgressMode::kJson) Event("done", it);
  Tick(false);
}

void ProgressDisplay::Finish() {
  if (mode_ == ProgressMode::kNone) return;
  MutexLock lock(mu_);
  if (finished_) return;
  Tick(true);
  finished_ = true;
}

void ProgressDisplay::Tick(bool force) {
  if (finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_once_ && now - last_ < kFrameInterval) return;
  drawn_once_ = true;
  last_ = now;
  if (mode_ == ProgressMode::kTty) {
    DrawTty();
    return;
  }
  for (Item& it : items_) {
    if (!it.moved || it.done) continue;
    it.moved = false;
    Event("progress", it);
  }
}

void ProgressDisplay::DrawTty() {
  size_t width = 80;
  winsize ws{};
  if (::ioctl(tty_fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
  std::string frame = "\r";
  if (lines_drawn_ > 0) frame += "\x1b[" + std::to_string(lines_drawn_) + "A";
  for (const Item& it : items_) {
    std::string line = ShortId(it.id) + "  " + it.status;
    if (!it.done) {
      constexpr int kBar = 30;
      const uint64_t total = std::max<uint64_t>(it.total, 1);
      const int filled = static_cast<int>(std::min<uint64_t>(it.current, total) * kBar / total);
      std::string bar(kBar, ' ');
      for (int i = 0; i < filled; ++i) bar[i] = '=';
      if (filled < kBar) bar[filled] = '>';
      line += " [" + bar + "] ";
    } else {
      line += "  ";
    }
    line += HumanSize(it.current) + " / " + HumanSize(it.total);
    if (line.size() > width - 1) line.resize(width - 1);
    frame += "\x1b[2K" + line + "\n";
  }
  lines_drawn_ = items_.size();
  (void)WriteAll(tty_fd_, frame, "the progress display");
}

void ProgressDisplay::Event(const char* event, const Item& item) {
  std::fprintf(json_out_, "{\"event\":\"%s\",\"id\":\"%s\",\"current\":%llu,\"total\":%llu}\n",
               event, JsonEscape(item.id).c_str(), static_cast<unsigned long long>(item.current),
               static_cast<unsigned long long>(item.total));
  std::fflush(json_out_);
}

}  // namespace hoist
