// StoredFds: the supervisor's file descriptor store, the fds workers keep with FDSTORE=1
// (base/fd_store.h) so they outlive the worker: named sets of fds, in the order they were
// first stored, handed to each new worker as fds 3, 4, ... with their names (LISTEN_FDNAMES).
// Storing under a name replaces the set stored under it; the total is capped.
//
// Thread-safety: one thread (the supervisor's loop).
// Errors: Put fails with EINVAL for a malformed name and E2BIG when the cap would be passed;
// the offered fds are then closed and what was stored stays as it was.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

class StoredFds {
 public:
  static constexpr size_t kDefaultMaxFds = 64;

  explicit StoredFds(size_t max_fds = kDefaultMaxFds) : max_fds_(max_fds) {}

  // Keeps `fds` under `name` (1-255 of [A-Za-z0-9_.-]), replacing any set of that name in place;
  // an empty `fds` removes the name.
  [[nodiscard]] Status Put(std::string_view name, std::vector<ScopedFd> fds);
  // Closes the set stored under `name`; false if there was none.
  bool Remove(std::string_view name);
  void Clear() { sets_.clear(); }

  bool empty() const { return Count() == 0; }
  // The number of fds stored, over all names.
  size_t Count() const;
  // Every fd, set by set, and the name of each, in the same order.
  std::vector<int> Fds() const;
  std::vector<std::string> Names() const;

 private:
  struct Set {
    std::string name;
    std::vector<ScopedFd> fds;
  };
  size_t max_fds_;
  std::vector<Set> sets_;
};

}  // namespace hoist
