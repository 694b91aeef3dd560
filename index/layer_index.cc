#include "index/layer_index.h"

namespace hoist {

std::string LayerLabel(size_t index, size_t count, std::string_view id) {
  std::string label = "layer " + std::to_string(index + 1) + " of " + std::to_string(count);
  if (!id.empty()) {
    label += " (";
    label += id;
    label += ")";
  }
  return label;
}

}  // namespace hoist
