#include "tools/image/docker_archive.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>

#include "index/tar_path.h"
#include "index/tar_reader.h"

namespace hoist {
namespace {

constexpr uint64_t kMaxSmallMember = 8 << 20;
// Real archives hold a few entries per image; the member table is kept in memory.
constexpr size_t kMaxMembers = 1 << 16;

}  // namespace

Result<TarArchive> TarArchive::Scan(const std::string& path) {
  TarArchive a;
  a.path_ = path;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> file, FileReader::Open(path));
  TarReader tar([&file](char* buf, size_t n) { return file->Read(buf, n); });
  while (true) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, tar.Next());
    if (m == nullptr) break;
    if (a.members_.size() >= kMaxMembers) {
      return Fail(EFBIG, "the archive has more than " + std::to_string(kMaxMembers) + " members");
    }
    Member mem;
    if (m->entry.type == EntryType::kSymlink) {
      mem.symlink = true;
      std::string dir = m->entry.path;
      size_t slash = dir.rfind('/');
      dir = slash == std::string::npos ? "" : dir.substr(0, slash);
      std::string t = m->entry.link_name;
      while (t.starts_with("../")) {
        t = t.substr(3);
        size_t s = dir.rfind('/');
        dir = s == std::string::npos ? "" : dir.substr(0, s);
      }
      if (t.starts_with("./")) t = t.substr(2);
      mem.target = dir.empty() ? t : dir + "/" + t;
    } else if (m->entry.type == EntryType::kRegular) {
      if (m->is_sparse)
        return Fail(ENOTSUP, "archive member " + QuoteName(m->raw_name) +
                                 " is a sparse file; archives of sparse files are not supported");
      mem.offset = m->payload_offset;
      mem.size = m->payload_size;
    } else {
      continue;
    }
    a.members_[m->entry.path] = mem;
  }
  return a;
}

Result<std::unique_ptr<ByteReader>> TarArchive::Open(const std::string& name, uint64_t offset,
                                                     uint64_t length) const {
  HOIST_ASSIGN_OR_RETURN(Member m, Find(name));
  if (offset > m.size) return Fail(EINVAL, name + ": offset beyond the member's end");
  if (length == UINT64_MAX) length = m.size - offset;
  if (length > m.size - offset) return Fail(EINVAL, name + ": range beyond the member's end");
  HOIST_ASSIGN_OR_RETURN(auto r, FileReader::Open(path_, m.offset + offset, length));
  return std::unique_ptr<ByteReader>(std::move(r));
}

Result<std::string> TarArchive::Read(const std::string& name) const {
  HOIST_ASSIGN_OR_RETURN(Member m, Find(name));
  if (m.size > kMaxSmallMember) return Fail(EFBIG, name + ": too large");
  HOIST_ASSIGN_OR_RETURN(auto r, Open(name));
  std::string out(m.size, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t n, ReadFull(*r, out.data(), out.size()));
  if (n != out.size()) return Fail(EIO, name + ": truncated");
  return out;
}

Result<uint64_t> TarArchive::Size(const std::string& name) const {
  HOIST_ASSIGN_OR_RETURN(Member m, Find(name));
  return m.size;
}

std::optional<TarArchive::Member> TarArchive::Resolve(std::string name) const {
  if (name.starts_with("./")) name = name.substr(2);
  for (int hops = 0; hops < 8; ++hops) {
    auto it = members_.find(name);
    if (it == members_.end()) return std::nullopt;
    if (!it->second.symlink) return it->second;
    name = it->second.target;
  }
  return std::nullopt;
}

Result<TarArchive::Member> TarArchive::Find(const std::string& name) const {
  std::optional<Member> m = Resolve(name);
  if (!m) return Fail(EINVAL, "the archive has no member \"" + name + "\"");
  return *m;
}

Result<std::vector<DockerArchiveEntry>> ParseDockerArchiveManifest(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsArray()) {
    return Fail(EINVAL, "manifest.json: not a JSON array");
  }
  std::vector<DockerArchiveEntry> out;
  for (const auto& item : doc.GetArray()) {
    if (!item.IsObject() || !item.HasMember("Config") || !item["Config"].IsString() ||
        !item.HasMember("Layers") || !item["Layers"].IsArray()) {
      return Fail(EINVAL, "manifest.json: an entry lacks Config or Layers");
    }
    DockerArchiveEntry e;
    e.config = item["Config"].GetString();
    for (const auto& l : item["Layers"].GetArray()) {
      if (!l.IsString()) return Fail(EINVAL, "manifest.json: a layer is not a string");
      e.layers.push_back(l.GetString());
    }
    if (item.HasMember("RepoTags") && item["RepoTags"].IsArray()) {
      for (const auto& t : item["RepoTags"].GetArray()) {
        if (t.IsString()) e.repo_tags.push_back(t.GetString());
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<ArchiveLayer> DescribeArchiveLayer(const TarArchive& archive, const std::string& name) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> r, archive.Open(name));
  HashingReader raw(std::move(r));
  std::string head(512, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(raw, head.data(), head.size()));
  head.resize(got);
  ArchiveLayer layer;
  layer.compression = DetectCompression(head);
  PrefixedReader prefixed(head, &raw);
  if (layer.compression == Compression::kNone) {
    HOIST_RETURN_IF_ERROR(Drain(prefixed));
  } else {
    HashingReader plain(NewDecompressor(layer.compression, &prefixed));
    HOIST_RETURN_IF_ERROR(Drain(plain));
    layer.diff_id = plain.Finish();
  }
  layer.digest = raw.Finish();
  layer.size = raw.bytes();
  if (layer.compression == Compression::kNone) layer.diff_id = layer.digest;
  return layer;
}

std::string SynthesizeManifest(std::string_view media_type, const Descriptor& config,
                               const std::vector<Descriptor>& layers) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  auto desc = [&](const Descriptor& d) {
    w.StartObject();
    str("mediaType");
    str(d.media_type);
    str("digest");
    str(d.digest.str());
    str("size");
    w.Int64(d.size);
    w.EndObject();
  };
  w.StartObject();
  str("schemaVersion");
  w.Int(2);
  str("mediaType");
  str(media_type);
  str("config");
  desc(config);
  str("layers");
  w.StartArray();
  for (const Descriptor& l : layers) desc(l);
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<std::string> UncompressedArchive(const std::string& input, const std::string& scratch) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> f, FileReader::Open(input));
  std::string head(4, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t n, ReadFull(*f, head.data(), head.size()));
  head.resize(n);
  const Compression c = DetectCompression(head);
  if (c == Compression::kNone) return input;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> again, FileReader::Open(input));
  std::unique_ptr<ByteReader> dec = NewDecompressor(c, again.get());
  FILE* out = std::fopen(scratch.c_str(), "wbe");
  if (out == nullptr) return Fail(ErrnoError("creating " + scratch));
  std::string buf(1 << 20, '\0');
  while (true) {
    auto got = dec->Read(buf.data(), buf.size());
    if (!got) {
      std::fclose(out);
      return Fail(got.error().Context("decompressing " + input));
    }
    if (*got == 0) break;
    if (std::fwrite(buf.data(), 1, *got, out) != *got) {
      Error e = ErrnoError("writing " + scratch);
      std::fclose(out);
      return Fail(e);
    }
  }
  if (std::fclose(out) != 0) return Fail(ErrnoError("writing " + scratch));
  return scratch;
}

}  // namespace hoist
