#include "fusefs/handoff_state.h"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/file_util.h"

namespace hoist {
namespace {

constexpr int kVersion = 1;
constexpr off_t kMaxBytes = off_t{64} << 20;

}  // namespace

std::string HandoffStateToJson(const HandoffState& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("hoist_handoff");
  w.Int(kVersion);
  w.Key("mountpoint");
  w.String(s.mountpoint.c_str(), static_cast<rapidjson::SizeType>(s.mountpoint.size()));
  const std::string init = Base64Encode(s.init);
  w.Key("init");
  w.String(init.c_str(), static_cast<rapidjson::SizeType>(init.size()));
  w.Key("reference");
  w.String(s.reference.c_str(), static_cast<rapidjson::SizeType>(s.reference.size()));
  w.Key("manifest_media_type");
  w.String(s.manifest_media_type.c_str(),
           static_cast<rapidjson::SizeType>(s.manifest_media_type.size()));
  const std::string manifest = Base64Encode(s.manifest);
  w.Key("manifest");
  w.String(manifest.c_str(), static_cast<rapidjson::SizeType>(manifest.size()));
  w.Key("from_local_store");
  w.Bool(s.from_local_store);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<HandoffState> HandoffStateFromJson(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError())
    return Fail(EINVAL,
                std::string("handoff state: ") + rapidjson::GetParseError_En(doc.GetParseError()));
  if (!doc.IsObject() || !doc.HasMember("hoist_handoff") || !doc["hoist_handoff"].IsInt())
    return Fail(EINVAL, "handoff state: not hoist's");
  if (doc["hoist_handoff"].GetInt() != kVersion)
    return Fail(EINVAL, "handoff state: version " + std::to_string(doc["hoist_handoff"].GetInt()) +
                            " is not " + std::to_string(kVersion));
  HandoffState s;
  auto str = [&](const char* key, std::string* out) -> Status {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsString())
      return Fail(EINVAL, std::string("handoff state: no string \"") + key + "\"");
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return Ok();
  };
  std::string init64, manifest64;
  HOIST_RETURN_IF_ERROR(str("mountpoint", &s.mountpoint));
  HOIST_RETURN_IF_ERROR(str("init", &init64));
  HOIST_RETURN_IF_ERROR(str("reference", &s.reference));
  HOIST_RETURN_IF_ERROR(str("manifest_media_type", &s.manifest_media_type));
  HOIST_RETURN_IF_ERROR(str("manifest", &manifest64));
  auto init = Base64Decode(init64);
  if (!init) return Fail(init.error().Context("handoff state: init"));
  auto manifest = Base64Decode(manifest64);
  if (!manifest) return Fail(manifest.error().Context("handoff state: manifest"));
  s.init = std::move(*init);
  s.manifest = std::move(*manifest);
  auto local = doc.FindMember("from_local_store");
  s.from_local_store = local != doc.MemberEnd() && local->value.IsBool() && local->value.GetBool();
  if (s.mountpoint.empty() || s.mountpoint[0] != '/')
    return Fail(EINVAL, "handoff state: mountpoint is not absolute");
  return s;
}

Result<ScopedFd> WriteHandoffMemfd(const HandoffState& state) {
  ScopedFd fd(::memfd_create("hoist-handoff", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Fail(ErrnoError("memfd_create"));
  HOIST_RETURN_IF_ERROR(WriteAll(fd.get(), HandoffStateToJson(state), "the handoff memfd"));
  // Written once: no process that holds it may change it later.
  (void)::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

Result<HandoffState> ReadHandoffMemfd(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Fail(ErrnoError("fstat of the handoff memfd"));
  if (st.st_size <= 0 || st.st_size > kMaxBytes)
    return Fail(EINVAL, "handoff state: size " + std::to_string(st.st_size) + " is out of range");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("reading the handoff memfd"));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return HandoffStateFromJson(text);
}

}  // namespace hoist
