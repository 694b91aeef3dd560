// JSON output for verbs: a RapidJSON PrettyWriter (4-space indent, as skopeo prints) into a
// string, plus small helpers for the shapes verbs emit.
#pragma once

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hoist {

class JsonOut {
 public:
  JsonOut() : writer_(buffer_) { writer_.SetIndent(' ', 4); }
  rapidjson::PrettyWriter<rapidjson::StringBuffer>& w() { return writer_; }

  void Key(std::string_view k) {
    writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
  }
  void String(std::string_view s) {
    writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  }
  void KeyString(std::string_view k, std::string_view v) {
    Key(k);
    String(v);
  }
  // A list of strings, or null when empty and `null_if_empty`.
  void StringList(const std::vector<std::string>& items, bool null_if_empty = false);
  // An object of string values, or null when empty and `null_if_empty`.
  void StringMap(const std::map<std::string, std::string>& items, bool null_if_empty = false);

  // The document, with a trailing newline.
  std::string Finish() { return std::string(buffer_.GetString(), buffer_.GetSize()) + "\n"; }

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer_;
};

}  // namespace hoist
