#include "tools/supervisor/stored_fds.h"

#include <algorithm>

namespace hoist {
namespace {

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

}  // namespace

Status StoredFds::Put(std::string_view name, std::vector<ScopedFd> fds) {
  if (!ValidName(name))
    return Fail(EINVAL, "fd store name \"" + std::string(name) + "\" is invalid");
  if (fds.empty()) {  // nothing to keep: the same as removing the name
    Remove(name);
    return Ok();
  }
  auto it = std::find_if(sets_.begin(), sets_.end(), [&](const Set& s) { return s.name == name; });
  const size_t replaced = it == sets_.end() ? 0 : it->fds.size();
  if (Count() - replaced + fds.size() > max_fds_) {
    return Fail(E2BIG, "storing " + std::to_string(fds.size()) + " fds as \"" + std::string(name) +
                           "\" would pass the limit of " + std::to_string(max_fds_));
  }
  if (it == sets_.end()) {
    sets_.push_back(Set{std::string(name), std::move(fds)});
  } else {
    it->fds = std::move(fds);
  }
  return Ok();
}

bool StoredFds::Remove(std::string_view name) {
  auto it = std::find_if(sets_.begin(), sets_.end(), [&](const Set& s) { return s.name == name; });
  if (it == sets_.end()) return false;
  sets_.erase(it);
  return true;
}

size_t StoredFds::Count() const {
  size_t n = 0;
  for (const Set& s : sets_) n += s.fds.size();
  return n;
}

std::vector<int> StoredFds::Fds() const {
  std::vector<int> out;
  for (const Set& s : sets_)
    for (const ScopedFd& fd : s.fds) out.push_back(fd.get());
  return out;
}

std::vector<std::string> StoredFds::Names() const {
  std::vector<std::string> out;
  for (const Set& s : sets_)
    for (size_t i = 0; i < s.fds.size(); ++i) out.push_back(s.name);
  return out;
}

}  // namespace hoist
