// Builders for hand-written layers in the fusefs tests.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "index/layer_index.h"

namespace hoist::testing {

inline Entry Dir(std::string path, uint32_t mode = 0755) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::kDirectory;
  e.mode = mode;
  return e;
}

inline Entry File(std::string path, uint64_t size = 0, uint32_t mode = 0644) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::kRegular;
  e.mode = mode;
  e.size = size;
  if (size > 0) e.chunks.push_back(Chunk{.file_offset = 0, .size = size});
  return e;
}

inline Entry Symlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::kSymlink;
  e.mode = 0777;
  e.link_name = std::move(target);
  return e;
}

inline Entry Hardlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = EntryType::kHardlink;
  e.mode = 0644;
  e.link_name = std::move(target);
  return e;
}

inline Entry Device(std::string path, EntryType type, uint32_t major, uint32_t minor) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = 0600;
  e.dev_major = major;
  e.dev_minor = minor;
  return e;
}

// A whiteout marker as tar carries it: an empty regular file.
inline Entry Whiteout(std::string path) { return File(std::move(path)); }

inline std::shared_ptr<const LayerIndex> Layer(std::vector<Entry> entries) {
  auto layer = std::make_shared<LayerIndex>();
  layer->entries = std::move(entries);
  return layer;
}

}  // namespace hoist::testing
