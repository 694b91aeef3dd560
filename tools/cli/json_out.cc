#include "tools/cli/json_out.h"

namespace hoist {

void JsonOut::StringList(const std::vector<std::string>& items, bool null_if_empty) {
  if (items.empty() && null_if_empty) {
    writer_.Null();
    return;
  }
  writer_.StartArray();
  for (const auto& s : items) String(s);
  writer_.EndArray();
}

void JsonOut::StringMap(const std::map<std::string, std::string>& items, bool null_if_empty) {
  if (items.empty() && null_if_empty) {
    writer_.Null();
    return;
  }
  writer_.StartObject();
  for (const auto& [k, v] : items) KeyString(k, v);
  writer_.EndObject();
}

}  // namespace hoist
