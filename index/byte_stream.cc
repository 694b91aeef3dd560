#include "index/byte_stream.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace hoist {

ReadCallback MemoryReader(std::string_view data) {
  auto pos = std::make_shared<size_t>(0);
  return [data, pos](char* buf, size_t n) -> Result<size_t> {
    size_t take = std::min(n, data.size() - *pos);
    if (take) std::memcpy(buf, data.data() + *pos, take);
    *pos += take;
    return take;
  };
}

}  // namespace hoist
