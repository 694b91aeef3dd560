// OpenObservers: the mount's list of OpenObservers (fuse_ops.h), told in the order added. Add
// them all before the session starts; OnOpen then only reads the list.
//
// Thread-safety: OnOpen is thread-safe once no Add runs; the observers must outlive the list.
#pragma once

#include <vector>

#include "fusefs/fuse_ops.h"

namespace hoist {

class OpenObservers : public OpenObserver {
 public:
  void Add(OpenObserver* observer) { observers_.push_back(observer); }
  bool empty() const { return observers_.empty(); }
  void OnOpen(const FileRef& file) override {
    for (OpenObserver* o : observers_) o->OnOpen(file);
  }

 private:
  std::vector<OpenObserver*> observers_;
};

}  // namespace hoist
