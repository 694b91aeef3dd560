#include "fusefs/stats_file.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <ctime>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/log.h"

namespace hoist {

std::string DefaultStateDir(unsigned euid, std::string_view xdg_runtime_dir) {
  if (euid == 0) return "/run/hoist";
  if (!xdg_runtime_dir.empty()) return std::string(xdg_runtime_dir) + "/hoist";
  return "/tmp/hoist-" + std::to_string(euid);
}

std::string DefaultStateDir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  return DefaultStateDir(::geteuid(), xdg ? xdg : "");
}

std::string StateFileForCanonicalMountpoint(std::string_view canonical_mountpoint,
                                            std::string_view state_dir) {
  Digest d = Digest::Of(canonical_mountpoint);
  return std::string(state_dir) + "/mounts/" + std::string(d.hex().substr(0, 32)) + ".json";
}

Result<std::string> StateFileForMountpoint(const std::string& mountpoint,
                                           std::string_view state_dir) {
  char buf[PATH_MAX];
  if (::realpath(mountpoint.c_str(), buf) == nullptr) {
    return Fail(ErrnoError("mountpoint " + mountpoint));
  }
  return StateFileForCanonicalMountpoint(buf, state_dir);
}

namespace {
int64_t SupervisorPidFromEnv() {
  const char* sup = std::getenv("HOIST_SUPERVISOR_PID");
  return sup == nullptr ? 0 : std::strtoll(sup, nullptr, 10);
}
}  // namespace

std::string MountStateToJson(const MountStateFile& state) {
  // The stats object, with the identity members added in front.
  rapidjson::Document doc;
  std::string stats_json = MountStatsToJson(state.stats);
  doc.Parse(stats_json.data(), stats_json.size());
  auto& a = doc.GetAllocator();
  rapidjson::Value out(rapidjson::kObjectType);
  out.AddMember("mountpoint", rapidjson::Value(state.mountpoint.c_str(), a), a);
  out.AddMember("image", rapidjson::Value(state.image.c_str(), a), a);
  out.AddMember("pid", rapidjson::Value(state.pid), a);
  out.AddMember("supervisor_pid", rapidjson::Value(state.supervisor_pid), a);
  out.AddMember("updated_unix", rapidjson::Value(state.updated_unix), a);
  for (auto& m : doc.GetObject()) out.AddMember(m.name, m.value, a);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  out.Accept(w);
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

Result<MountStateFile> MountStateFromJson(std::string_view json) {
  HOIST_ASSIGN_OR_RETURN(MountStatsSnapshot stats, MountStatsFromJson(json));
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());  // known valid: MountStatsFromJson parsed it
  MountStateFile state;
  state.stats = std::move(stats);
  auto str = [&](const char* name, std::string* out) -> Status {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd()) return Ok();
    if (!it->value.IsString())
      return Fail(EINVAL, std::string("mount state: \"") + name + "\" is not a string");
    out->assign(it->value.GetString(), it->value.GetStringLength());
    return Ok();
  };
  auto num = [&](const char* name, int64_t* out) -> Status {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd()) return Ok();
    if (!it->value.IsInt64())
      return Fail(EINVAL, std::string("mount state: \"") + name + "\" is not an integer");
    *out = it->value.GetInt64();
    return Ok();
  };
  HOIST_RETURN_IF_ERROR(str("mountpoint", &state.mountpoint));
  HOIST_RETURN_IF_ERROR(str("image", &state.image));
  HOIST_RETURN_IF_ERROR(num("pid", &state.pid));
  HOIST_RETURN_IF_ERROR(num("supervisor_pid", &state.supervisor_pid));
  HOIST_RETURN_IF_ERROR(num("updated_unix", &state.updated_unix));
  return state;
}

Status WriteMountStateFile(const std::string& path, const MountStateFile& state) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    HOIST_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0755));
  }
  return WriteFileAtomic(path, MountStateToJson(state), 0644);
}

Result<MountStateFile> ReadMountStateFile(const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto state = MountStateFromJson(text);
  if (!state) return Fail(state.error().Context(path));
  return state;
}

StatsFileWriter::StatsFileWriter(const MountStats* stats, std::string path, std::string mountpoint,
                                 std::string image, std::chrono::milliseconds interval)
    : stats_(stats),
      path_(std::move(path)),
      mountpoint_(std::move(mountpoint)),
      image_(std::move(image)),
      interval_(interval),
      supervisor_pid_(SupervisorPidFromEnv()) {
  // The first write before the constructor returns: a mount that says it is ready has its state
  // file (hoist stats, hoist umount and hoist upgrade read it right away).
  if (auto s = WriteNow(); !s) {
    HOIST_LOG(kWarning) << "writing mount state file: " << s.error().message();
  }
  thread_ = std::thread([this] { Loop(); });
}

StatsFileWriter::~StatsFileWriter() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
  if (skip_final_write_.load()) return;
  if (auto s = WriteNow(); !s) {
    HOIST_LOG(kWarning) << "writing mount state file: " << s.error().message();
  }
}

Status StatsFileWriter::WriteNow() {
  MountStateFile state;
  state.mountpoint = mountpoint_;
  state.image = image_;
  state.pid = ::getpid();
  state.supervisor_pid = supervisor_pid_;
  state.updated_unix = static_cast<int64_t>(::time(nullptr));
  state.stats = stats_->Snapshot();
  return WriteMountStateFile(path_, state);
}

void StatsFileWriter::Loop() {
  MutexLock lock(mu_);
  bool warned = false;
  while (!stop_) {
    lock.Unlock();
    if (auto s = WriteNow(); !s && !warned) {
      HOIST_LOG(kWarning) << "writing mount state file: " << s.error().message();
      warned = true;
    }
    lock.Lock();
    const auto deadline = std::chrono::steady_clock::now() + interval_;
    while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
    }
  }
}

}  // namespace hoist
