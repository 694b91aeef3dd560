#include "tools/image/image_manifest.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace hoist {
namespace {

using rapidjson::Document;
using rapidjson::Value;

Result<Document> ParseJson(std::string_view bytes, std::string_view what) {
  Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError()) {
    return Fail(EINVAL, std::string(what) + " is not valid JSON: " +
                            rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                            std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) return Fail(EINVAL, std::string(what) + " is not a JSON object");
  return doc;
}

std::string GetString(const Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string Serialize(const Document& doc) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
  doc.Accept(writer);
  return std::string(buf.GetString(), buf.GetSize());
}

void SetString(Value& obj, const char* key, std::string_view value, Document::AllocatorType& a) {
  Value v(value.data(), static_cast<rapidjson::SizeType>(value.size()), a);
  auto it = obj.FindMember(key);
  if (it != obj.MemberEnd()) {
    it->value = v;
  } else {
    obj.AddMember(Value(key, a), v, a);
  }
}

// Replaces a descriptor's mediaType/digest/size/annotations in place (keeping other members).
void WriteDescriptor(Value& obj, const Descriptor& b, bool with_annotations,
                     Document::AllocatorType& a) {
  SetString(obj, "mediaType", b.media_type, a);
  SetString(obj, "digest", b.digest.str(), a);
  auto it = obj.FindMember("size");
  if (it != obj.MemberEnd()) {
    it->value.SetInt64(b.size);
  } else {
    obj.AddMember("size", Value().SetInt64(b.size), a);
  }
  if (!with_annotations) return;
  obj.RemoveMember("annotations");
  if (!b.annotations.empty()) {
    Value ann(rapidjson::kObjectType);
    for (const auto& [k, v] : b.annotations) {  // std::map: sorted, deterministic
      ann.AddMember(Value(k.data(), static_cast<rapidjson::SizeType>(k.size()), a),
                    Value(v.data(), static_cast<rapidjson::SizeType>(v.size()), a), a);
    }
    obj.AddMember("annotations", ann, a);
  }
}

}  // namespace

bool IsLayerMediaType(std::string_view t) {
  return t == kMediaTypeOciLayerTar || t == kMediaTypeOciLayerGzip || t == kMediaTypeOciLayerZstd ||
         t == kMediaTypeDockerLayerGzip || t == kMediaTypeDockerLayerTar ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
}

Result<ImageManifest> ParseContainerImageManifest(std::string_view bytes,
                                                  std::string_view media_type) {
  HOIST_ASSIGN_OR_RETURN(ImageManifest m, ParseImageManifest(bytes, media_type));
  if (m.config.media_type != kMediaTypeOciConfig && m.config.media_type != kMediaTypeDockerConfig) {
    return Fail(EINVAL, "not an image: config media type is \"" + m.config.media_type + "\"");
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Descriptor& d = m.layers[i];
    if (!IsLayerMediaType(d.media_type) && d.media_type != kMediaTypeDockerForeignLayerGzip) {
      return Fail(EINVAL, "not an image: layer " + std::to_string(i) + " (" + d.digest.str() +
                              ") has media type \"" + d.media_type + "\"");
    }
  }
  return m;
}

Result<std::string> RewriteManifest(std::string_view original,
                                    const std::vector<Descriptor>& layers,
                                    const Descriptor* config) {
  HOIST_ASSIGN_OR_RETURN(Document doc, ParseJson(original, "manifest"));
  auto& a = doc.GetAllocator();
  auto l = doc.FindMember("layers");
  if (l == doc.MemberEnd() || !l->value.IsArray() || l->value.Size() != layers.size()) {
    return Fail(EINVAL, "manifest layer count does not match the converted layers");
  }
  SetString(doc, "mediaType", kMediaTypeOciManifest, a);
  auto c = doc.FindMember("config");
  if (c != doc.MemberEnd() && c->value.IsObject()) {
    if (GetString(c->value, "mediaType") == kMediaTypeDockerConfig) {
      SetString(c->value, "mediaType", kMediaTypeOciConfig, a);
    }
    if (config) {
      SetString(c->value, "digest", config->digest.str(), a);
      auto size = c->value.FindMember("size");
      if (size != c->value.MemberEnd()) size->value.SetInt64(config->size);
    }
  } else if (config) {
    return Fail(EINVAL, "manifest has no config descriptor");
  }
  for (rapidjson::SizeType i = 0; i < layers.size(); ++i) {
    WriteDescriptor(l->value[i], layers[i], /*with_annotations=*/true, a);
  }
  return Serialize(doc);
}

Result<std::string> RewriteConfigDiffIds(std::string_view original,
                                         const std::vector<Digest>& diff_ids) {
  HOIST_ASSIGN_OR_RETURN(Document doc, ParseJson(original, "image config"));
  auto& a = doc.GetAllocator();
  auto rootfs = doc.FindMember("rootfs");
  if (rootfs == doc.MemberEnd() || !rootfs->value.IsObject()) {
    return Fail(EINVAL, "image config has no rootfs object");
  }
  auto ids = rootfs->value.FindMember("diff_ids");
  if (ids == rootfs->value.MemberEnd() || !ids->value.IsArray() ||
      ids->value.Size() != diff_ids.size()) {
    return Fail(EINVAL, "image config rootfs.diff_ids does not match the converted layers");
  }
  for (rapidjson::SizeType i = 0; i < diff_ids.size(); ++i) {
    const std::string d = diff_ids[i].str();
    ids->value[i].SetString(d.data(), static_cast<rapidjson::SizeType>(d.size()), a);
  }
  return Serialize(doc);
}

Result<std::string> RewriteIndex(std::string_view original,
                                 const std::vector<std::optional<Descriptor>>& replacements) {
  HOIST_ASSIGN_OR_RETURN(Document doc, ParseJson(original, "index"));
  auto& a = doc.GetAllocator();
  auto m = doc.FindMember("manifests");
  if (m == doc.MemberEnd() || !m->value.IsArray() || m->value.Size() != replacements.size()) {
    return Fail(EINVAL, "index entry count does not match the converted manifests");
  }
  SetString(doc, "mediaType", kMediaTypeOciIndex, a);
  Value kept(rapidjson::kArrayType);
  for (rapidjson::SizeType i = 0; i < replacements.size(); ++i) {
    if (!replacements[i]) continue;
    Value entry(m->value[i], a);
    WriteDescriptor(entry, *replacements[i], /*with_annotations=*/false, a);
    kept.PushBack(entry, a);
  }
  m->value = kept;
  return Serialize(doc);
}

}  // namespace hoist
