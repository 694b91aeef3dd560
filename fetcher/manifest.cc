#include "fetcher/manifest.h"

#include <cctype>

#include "rapidjson/document.h"

namespace hoist {
namespace {

using rapidjson::Value;

std::string Str(const Value& obj, const char* name) {
  if (!obj.IsObject()) return "";
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return "";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const Value* Member(const Value& obj, const char* name) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

std::unexpected<Error> Bad(std::string_view what, std::string_view why) {
  return Fail(EINVAL, "malformed " + std::string(what) + ": " + std::string(why));
}

Result<std::map<std::string, std::string>> StringMap(const Value& obj, const char* name,
                                                     std::string_view what) {
  std::map<std::string, std::string> out;
  const Value* v = Member(obj, name);
  if (!v) return out;
  if (!v->IsObject()) return Bad(what, std::string(name) + " is not an object");
  for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
    if (!m->value.IsString()) return Bad(what, std::string(name) + " has a non-string value");
    out.emplace(std::string(m->name.GetString(), m->name.GetStringLength()),
                std::string(m->value.GetString(), m->value.GetStringLength()));
  }
  return out;
}

Result<std::vector<std::string>> StringList(const Value& obj, const char* name,
                                            std::string_view what) {
  std::vector<std::string> out;
  const Value* v = Member(obj, name);
  if (!v) return out;
  if (!v->IsArray()) return Bad(what, std::string(name) + " is not an array");
  for (const Value& e : v->GetArray()) {
    if (!e.IsString()) return Bad(what, std::string(name) + " has a non-string element");
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return out;
}

Result<Platform> ParsePlatformObject(const Value& v, std::string_view what) {
  if (!v.IsObject()) return Bad(what, "platform is not an object");
  Platform p;
  p.os = Str(v, "os");
  p.architecture = Str(v, "architecture");
  p.variant = Str(v, "variant");
  p.os_version = Str(v, "os.version");
  return p;
}

Result<Descriptor> ParseDescriptor(const Value& v, std::string_view what) {
  if (!v.IsObject()) return Bad(what, "descriptor is not an object");
  Descriptor d;
  d.media_type = Str(v, "mediaType");
  auto digest = Digest::Parse(Str(v, "digest"));
  if (!digest) return Bad(what, "descriptor digest: " + digest.error().message());
  d.digest = *digest;
  const Value* size = Member(v, "size");
  if (!size || !size->IsInt64() || size->GetInt64() < 0) {
    return Bad(what, "descriptor " + d.digest.str() + " has no valid size");
  }
  d.size = size->GetInt64();
  HOIST_ASSIGN_OR_RETURN(d.annotations, StringMap(v, "annotations", what));
  HOIST_ASSIGN_OR_RETURN(d.urls, StringList(v, "urls", what));
  if (const Value* p = Member(v, "platform")) {
    HOIST_ASSIGN_OR_RETURN(Platform plat, ParsePlatformObject(*p, what));
    d.platform = std::move(plat);
  }
  d.artifact_type = Str(v, "artifactType");
  return d;
}

Result<rapidjson::Document> ParseJsonObject(std::string_view bytes, std::string_view what) {
  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError()) return Bad(what, "not valid JSON");
  if (!doc.IsObject()) return Bad(what, "not a JSON object");
  return doc;
}

Status CheckSchemaAndType(const rapidjson::Document& doc, std::string_view media_type,
                          std::string_view what) {
  const Value* schema = Member(doc, "schemaVersion");
  if (!schema || !schema->IsInt() || schema->GetInt() != 2) {
    return Bad(what, "schemaVersion is not 2");
  }
  std::string body_type = Str(doc, "mediaType");
  if (!body_type.empty() && body_type != media_type) {
    return Bad(what, "mediaType \"" + body_type + "\" in the body disagrees with \"" +
                         std::string(media_type) + "\"");
  }
  return Ok();
}

std::string NormalArch(std::string_view arch) {
  if (arch == "x86_64" || arch == "x86-64") return "amd64";
  if (arch == "aarch64") return "arm64";
  if (arch == "armhf" || arch == "armel") return "arm";
  if (arch == "i386") return "386";
  return std::string(arch);
}

std::string NormalVariant(std::string_view arch, std::string_view variant) {
  std::string a = NormalArch(arch);
  if (a == "arm64" && (variant.empty() || variant == "8")) return "v8";
  if (a == "arm" && variant.empty()) return arch == "armel" ? "v6" : "v7";
  if (a == "arm" && variant.size() == 1 && std::isdigit(static_cast<unsigned char>(variant[0]))) {
    return "v" + std::string(variant);
  }
  return std::string(variant);
}

}  // namespace

std::string ManifestAcceptHeader() {
  return std::string(kMediaTypeOciIndex) + ", " + std::string(kMediaTypeOciManifest) + ", " +
         std::string(kMediaTypeDockerManifestList) + ", " + std::string(kMediaTypeDockerManifest);
}

std::string MediaTypeWithoutParams(std::string_view content_type) {
  std::string_view s = content_type.substr(0, content_type.find(';'));
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsIndexMediaType(std::string_view t) {
  return t == kMediaTypeOciIndex || t == kMediaTypeDockerManifestList;
}
bool IsManifestMediaType(std::string_view t) {
  return t == kMediaTypeOciManifest || t == kMediaTypeDockerManifest;
}

Result<std::string> ManifestMediaType(std::string_view content_type, std::string_view bytes) {
  std::string header = MediaTypeWithoutParams(content_type);
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJsonObject(bytes, "manifest"));
  std::string body = Str(doc, "mediaType");
  if (IsIndexMediaType(header) || IsManifestMediaType(header)) {
    if (!body.empty() && body != header) {
      return Bad("manifest", "mediaType \"" + body +
                                 "\" in the body disagrees with Content-Type \"" + header + "\"");
    }
    return header;
  }
  if (header.find("prettyjws") != std::string::npos ||
      header == "application/vnd.docker.distribution.manifest.v1+json") {
    return Fail(EINVAL, "unsupported manifest type \"" + header + "\" (schema 1)");
  }
  if (IsIndexMediaType(body) || IsManifestMediaType(body)) return body;
  if (!body.empty()) return Fail(EINVAL, "unsupported manifest type \"" + body + "\"");
  if (Member(doc, "manifests")) return std::string(kMediaTypeOciIndex);
  if (Member(doc, "config") && Member(doc, "layers")) return std::string(kMediaTypeOciManifest);
  return Fail(EINVAL, "unrecognised manifest (Content-Type \"" + header + "\")");
}

Result<ImageManifest> ParseImageManifest(std::string_view bytes, std::string_view media_type) {
  constexpr std::string_view kWhat = "image manifest";
  if (!IsManifestMediaType(media_type)) {
    return Bad(kWhat, "media type \"" + std::string(media_type) + "\" is not an image manifest");
  }
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJsonObject(bytes, kWhat));
  HOIST_RETURN_IF_ERROR(CheckSchemaAndType(doc, media_type, kWhat));
  ImageManifest m;
  m.media_type = std::string(media_type);
  const Value* config = Member(doc, "config");
  if (!config) return Bad(kWhat, "no config");
  HOIST_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, kWhat));
  const Value* layers = Member(doc, "layers");
  if (!layers || !layers->IsArray()) return Bad(kWhat, "layers is not an array");
  for (const Value& l : layers->GetArray()) {
    HOIST_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l, kWhat));
    m.layers.push_back(std::move(d));
  }
  HOIST_ASSIGN_OR_RETURN(m.annotations, StringMap(doc, "annotations", kWhat));
  if (const Value* subject = Member(doc, "subject")) {
    HOIST_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(*subject, kWhat));
    m.subject = std::move(d);
  }
  m.artifact_type = Str(doc, "artifactType");
  return m;
}

Result<ImageIndex> ParseImageIndex(std::string_view bytes, std::string_view media_type) {
  constexpr std::string_view kWhat = "image index";
  if (!IsIndexMediaType(media_type)) {
    return Bad(kWhat, "media type \"" + std::string(media_type) + "\" is not an index");
  }
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJsonObject(bytes, kWhat));
  HOIST_RETURN_IF_ERROR(CheckSchemaAndType(doc, media_type, kWhat));
  ImageIndex index;
  index.media_type = std::string(media_type);
  const Value* manifests = Member(doc, "manifests");
  if (!manifests || !manifests->IsArray()) return Bad(kWhat, "manifests is not an array");
  for (const Value& e : manifests->GetArray()) {
    HOIST_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(e, kWhat));
    index.manifests.push_back(std::move(d));
  }
  HOIST_ASSIGN_OR_RETURN(index.annotations, StringMap(doc, "annotations", kWhat));
  if (const Value* subject = Member(doc, "subject")) {
    HOIST_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(*subject, kWhat));
    index.subject = std::move(d);
  }
  return index;
}

Result<Platform> Platform::Parse(std::string_view text) {
  auto bad = [&] {
    return Fail(EINVAL, "invalid platform \"" + std::string(text.substr(0, 100)) +
                            "\" (want os/arch[/variant], e.g. linux/amd64)");
  };
  std::vector<std::string> parts;
  size_t i = 0;
  while (true) {
    size_t j = text.find('/', i);
    parts.emplace_back(text.substr(i, j == std::string_view::npos ? j : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) return bad();
  for (std::string& p : parts) {
    if (p.empty()) return bad();
    for (char& c : p) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
        return bad();
      }
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  Platform p;
  p.os = parts[0];
  p.architecture = NormalArch(parts[1]);
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

Platform Platform::Host() {
  Platform p;
  p.os = "linux";
#if defined(__x86_64__)
  p.architecture = "amd64";
#elif defined(__aarch64__)
  p.architecture = "arm64";
  p.variant = "v8";
#elif defined(__arm__)
  p.architecture = "arm";
  p.variant = "v7";
#elif defined(__i386__)
  p.architecture = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  p.architecture = "ppc64le";
#elif defined(__s390x__)
  p.architecture = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  p.architecture = "riscv64";
#else
  p.architecture = "unknown";
#endif
  return p;
}

std::string Platform::String() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

bool Platform::Matches(const Platform& c) const {
  if (c.os != os || NormalArch(c.architecture) != NormalArch(architecture)) return false;
  if (variant.empty()) {
    std::string a = NormalArch(architecture);
    if (a != "arm" && a != "arm64") return true;
  }
  return NormalVariant(c.architecture, c.variant) == NormalVariant(architecture, variant);
}

Result<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& platform) {
  const Descriptor* loose = nullptr;
  std::string offered;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform) continue;
    const Platform& p = *d.platform;
    if (p.os == "unknown" && p.architecture == "unknown") continue;
    if (!offered.empty()) offered += ", ";
    offered += p.String();
    if (!platform.Matches(p)) continue;
    if (NormalVariant(p.architecture, p.variant) ==
        NormalVariant(platform.architecture, platform.variant)) {
      return d;
    }
    if (!loose) loose = &d;
  }
  if (loose) return *loose;
  return Fail(ENOENT, "no manifest for platform " + platform.String() + " in the index (it has: " +
                          (offered.empty() ? std::string("none") : offered) + ")");
}

Result<ImageConfig> ParseImageConfig(std::string_view bytes) {
  constexpr std::string_view kWhat = "image config";
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJsonObject(bytes, kWhat));
  ImageConfig c;
  c.raw = std::string(bytes);
  c.created = Str(doc, "created");
  c.author = Str(doc, "author");
  c.architecture = Str(doc, "architecture");
  c.os = Str(doc, "os");
  c.variant = Str(doc, "variant");
  if (const Value* cfg = Member(doc, "config")) {
    if (!cfg->IsObject()) return Bad(kWhat, "config is not an object");
    HOIST_ASSIGN_OR_RETURN(c.env, StringList(*cfg, "Env", kWhat));
    HOIST_ASSIGN_OR_RETURN(c.cmd, StringList(*cfg, "Cmd", kWhat));
    HOIST_ASSIGN_OR_RETURN(c.entrypoint, StringList(*cfg, "Entrypoint", kWhat));
    c.working_dir = Str(*cfg, "WorkingDir");
    c.user = Str(*cfg, "User");
    HOIST_ASSIGN_OR_RETURN(c.labels, StringMap(*cfg, "Labels", kWhat));
  }
  if (const Value* rootfs = Member(doc, "rootfs")) {
    if (!rootfs->IsObject()) return Bad(kWhat, "rootfs is not an object");
    HOIST_ASSIGN_OR_RETURN(std::vector<std::string> ids, StringList(*rootfs, "diff_ids", kWhat));
    for (const std::string& id : ids) {
      auto d = Digest::Parse(id);
      if (!d) return Bad(kWhat, "rootfs.diff_ids: " + d.error().message());
      c.diff_ids.push_back(*d);
    }
  }
  if (const Value* history = Member(doc, "history")) {
    if (!history->IsArray()) return Bad(kWhat, "history is not an array");
    for (const Value& h : history->GetArray()) {
      if (!h.IsObject()) return Bad(kWhat, "history entry is not an object");
      HistoryEntry e;
      e.created = Str(h, "created");
      e.created_by = Str(h, "created_by");
      e.author = Str(h, "author");
      e.comment = Str(h, "comment");
      const Value* empty = Member(h, "empty_layer");
      e.empty_layer = empty && empty->IsBool() && empty->GetBool();
      c.history.push_back(std::move(e));
    }
  }
  return c;
}

}  // namespace hoist
