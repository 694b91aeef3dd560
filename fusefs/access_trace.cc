#include "fusefs/access_trace.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <set>
#include <utility>

#include "index/tar_path.h"

namespace hoist {
namespace {

using rapidjson::Value;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

std::unexpected<Error> Bad(std::string_view what) {
  return Fail(EBADMSG, "access trace: " + std::string(what));
}

std::string FileLabel(size_t i) { return "files[" + std::to_string(i) + "]"; }

Result<Digest> DigestField(const Value& obj, const char* key, std::string_view label) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return Bad(std::string(label) + " has no " + key);
  if (!it->value.IsString()) return Bad(std::string(label) + "." + key + " is not a string");
  auto digest = Digest::Parse(std::string_view(it->value.GetString(), it->value.GetStringLength()));
  if (!digest) return Bad(std::string(label) + "." + key + ": " + digest.error().message());
  return *digest;
}

}  // namespace

std::string SerializeAccessTrace(const AccessTrace& trace) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("schemaVersion");
  w.Int(1);
  w.Key("image");
  WriteString(w, trace.image.str());
  w.Key("files");
  w.StartArray();
  for (const TracedFile& f : trace.files) {
    w.StartObject();
    w.Key("layer");
    WriteString(w, f.layer.str());
    w.Key("path");
    WriteString(w, f.path);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<AccessTrace> ParseAccessTrace(std::string_view json, size_t max_files) {
  if (json.size() > kMaxAccessTraceBytes) {
    return Fail(EFBIG,
                "access trace: larger than " + std::to_string(kMaxAccessTraceBytes) + " bytes");
  }
  rapidjson::Document doc;
  // Iterative: nesting depth costs heap, not stack.
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    return Bad("not valid JSON at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
               rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return Bad("not a JSON object");
  auto schema = doc.FindMember("schemaVersion");
  if (schema == doc.MemberEnd() || !schema->value.IsInt() || schema->value.GetInt() != 1) {
    return Bad("schemaVersion is not 1");
  }
  AccessTrace trace;
  HOIST_ASSIGN_OR_RETURN(trace.image, DigestField(doc, "image", "the trace"));
  auto files = doc.FindMember("files");
  if (files == doc.MemberEnd()) return Bad("the trace has no files");
  if (!files->value.IsArray()) return Bad("files is not an array");
  const auto& array = files->value.GetArray();
  if (array.Size() > max_files) {
    return Fail(EFBIG, "access trace: more than " + std::to_string(max_files) + " files");
  }
  trace.files.reserve(array.Size());
  std::set<std::pair<std::string, std::string_view>> seen;
  for (size_t i = 0; i < array.Size(); ++i) {
    const Value& v = array[static_cast<rapidjson::SizeType>(i)];
    const std::string label = FileLabel(i);
    if (!v.IsObject()) return Bad(label + " is not an object");
    TracedFile f;
    HOIST_ASSIGN_OR_RETURN(f.layer, DigestField(v, "layer", label));
    auto path = v.FindMember("path");
    if (path == v.MemberEnd()) return Bad(label + " has no path");
    if (!path->value.IsString()) return Bad(label + ".path is not a string");
    const std::string_view raw(path->value.GetString(), path->value.GetStringLength());
    auto clean = CleanEntryPath(raw);
    if (!clean || *clean != raw || raw.empty()) {
      return Bad(label + ".path " + QuoteName(raw) + " is not a clean path inside a layer");
    }
    if (!seen.emplace(f.layer.str(), raw).second) {
      return Bad(label + " repeats an earlier file (" + QuoteName(raw) + ")");
    }
    f.path.assign(raw);
    trace.files.push_back(std::move(f));
  }
  return trace;
}

}  // namespace hoist
