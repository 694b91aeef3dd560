// ProgressDisplay: the one progress display of a long verb (pull, push, save, load), one item
// per layer or blob, like docker and skopeo.
//
//   ProgressDisplay progress(ChooseProgressMode(a.quiet, a.json));
//   int item = progress.Add(layer.digest.str(), layer.size);
//   progress.Advance(item, n);     // from any thread
//   progress.Done(item);
//   progress.Finish();             // the last frame (also done by the destructor)
//
// Modes:
//   kTty:  on stderr, one line per item ("<12 hex>  Copying [=====>    ]  12.3 MB / 50.0 MB"),
//          redrawn in place at most every 100 ms (10 frames a second) however often Advance is
//          called. Each frame starts with '\r' then moves the cursor up over the last frame's
//          lines; lines are cut to the terminal's width.
//   kJson: one JSON object per line on stdout, flushed: {"event":"start","id":..,"total":N} at
//          Add, {"event":"progress","id":..,"current":N,"total":N} for the items that moved, at
//          most every 100 ms, and {"event":"done","id":..,"current":N,"total":N} at once.
//   kNone: nothing (-q, or stderr is not a terminal).
//
// Thread-safety: every method may be called from several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "tools/image/image_stream.h"

namespace hoist {

enum class ProgressMode { kNone, kTty, kJson };

// kJson when `json`, else kNone when `quiet` or stderr is not a terminal, else kTty.
ProgressMode ChooseProgressMode(bool quiet, bool json);

class ProgressDisplay {
 public:
  explicit ProgressDisplay(ProgressMode mode, int tty_fd = 2, FILE* json_out = stdout);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  ProgressMode mode() const { return mode_; }
  // A new item named `id` (a digest: the line shows its first 12 hex digits) of `total` bytes.
  int Add(const std::string& id, uint64_t total);
  void AddTotal(int item, uint64_t n);
  void Advance(int item, uint64_t n);
  // The item is complete; `status` replaces "Done" (e.g. "Already exists").
  void Done(int item, std::string_view status = "Done");
  // Draws the last frame (all items as they are); later calls do nothing.
  void Finish();

 private:
  struct Item {
    std::string id;
    std::string status = "Waiting";
    uint64_t total = 0;
    uint64_t current = 0;
    bool done = false;
    bool moved = false;  // since the last JSON progress event
  };
  void Tick(bool force) HOIST_REQUIRES(mu_);
  void DrawTty() HOIST_REQUIRES(mu_);
  void Event(const char* event, const Item& item) HOIST_REQUIRES(mu_);

  const ProgressMode mode_;
  const int tty_fd_;
  FILE* const json_out_;
  Mutex mu_;
  std::vector<Item> items_ HOIST_GUARDED_BY(mu_);
  size_t lines_drawn_ HOIST_GUARDED_BY(mu_) = 0;
  bool finished_ HOIST_GUARDED_BY(mu_) = false;
  bool drawn_once_ HOIST_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_ HOIST_GUARDED_BY(mu_);
};

// Counts the bytes read through it as progress of one item (Done at the end of the stream when
// `done_at_end`).
class ProgressReader : public ByteReader {
 public:
  ProgressReader(std::unique_ptr<ByteReader> inner, ProgressDisplay* progress, int item,
                 bool done_at_end = false)
      : inner_(std::move(inner)), progress_(progress), item_(item), done_at_end_(done_at_end) {}
  Result<size_t> Read(char* buf, size_t n) override {
    HOIST_ASSIGN_OR_RETURN(size_t got, inner_->Read(buf, n));
    progress_->Advance(item_, got);
    if (got == 0 && n > 0 && done_at_end_) progress_->Done(item_);
    return got;
  }

 private:
  std::unique_ptr<ByteReader> inner_;
  ProgressDisplay* progress_;
  int item_;
  bool done_at_end_;
};

}  // namespace hoist
