#include "tools/runtime/runtime_spec.h"

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <charconv>

namespace hoist {
namespace {

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = text.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(text.substr(start));
      return out;
    }
    out.push_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

// A decimal id in [0, 2^32 - 2] (0xFFFFFFFF is the kernel's "no id").
std::optional<uint32_t> ParseId(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value >= 0xFFFFFFFFull) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(value);
}

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::string_view line : Split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    lines.push_back(line);
  }
  return lines;
}

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
void KeyStr(Writer& w, std::string_view k, std::string_view v) {
  Str(w, k);
  Str(w, v);
}
void StrList(Writer& w, const std::vector<std::string>& items) {
  w.StartArray();
  for (const std::string& s : items) Str(w, s);
  w.EndArray();
}

struct MountSpec {
  const char* destination;
  const char* type;
  const char* source;
  std::vector<std::string> options;
};

const std::vector<MountSpec>& DefaultMounts() {
  static const std::vector<MountSpec> mounts = {
      {"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}},
      {"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}},
      {"/dev/pts",
       "devpts",
       "devpts",
       {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
      {"/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
      {"/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}},
      {"/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}},
  };
  return mounts;
}

}  // namespace

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> entries;
  for (std::string_view line : Lines(text)) {
    std::vector<std::string_view> f = Split(line, ':');
    if (f.size() < 7 || f[0].empty()) continue;
    auto uid = ParseId(f[2]);
    auto gid = ParseId(f[3]);
    if (!uid || !gid) continue;
    entries.push_back({std::string(f[0]), *uid, *gid, std::string(f[5])});
  }
  return entries;
}

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> entries;
  for (std::string_view line : Lines(text)) {
    std::vector<std::string_view> f = Split(line, ':');
    if (f.size() < 4 || f[0].empty()) continue;
    auto gid = ParseId(f[2]);
    if (!gid) continue;
    GroupEntry g{std::string(f[0]), *gid, {}};
    if (!f[3].empty()) {
      for (std::string_view m : Split(f[3], ',')) {
        if (!m.empty()) g.members.emplace_back(m);
      }
    }
    entries.push_back(std::move(g));
  }
  return entries;
}

Result<ExecUser> ResolveExecUser(std::string_view spec, const std::optional<std::string>& passwd,
                                 const std::optional<std::string>& group) {
  std::string_view user_part = spec;
  std::optional<std::string_view> group_part;
  if (const size_t colon = spec.find(':'); colon != std::string_view::npos) {
    user_part = spec.substr(0, colon);
    group_part = spec.substr(colon + 1);
    if (group_part->empty()) {
      return Fail(EINVAL, "user \"" + std::string(spec) + "\": empty group after ':'");
    }
  }
  if (user_part.empty()) {
    if (group_part) return Fail(EINVAL, "user \"" + std::string(spec) + "\": empty user name");
    user_part = "0";
  }
  const std::vector<PasswdEntry> users = passwd ? ParsePasswd(*passwd) : std::vector<PasswdEntry>{};
  const std::vector<GroupEntry> groups = group ? ParseGroup(*group) : std::vector<GroupEntry>{};

  ExecUser out;
  std::string user_name;
  if (AllDigits(user_part)) {
    auto uid = ParseId(user_part);
    if (!uid) return Fail(EINVAL, "user \"" + std::string(spec) + "\": uid out of range");
    out.uid = *uid;
    auto it = std::find_if(users.begin(), users.end(),
                           [&](const PasswdEntry& e) { return e.uid == *uid; });
    if (it != users.end()) {
      out.gid = it->gid;
      out.home = it->home.empty() ? "/" : it->home;
      user_name = it->name;
    }
  } else {
    if (!passwd) {
      return Fail(ENOENT, "user \"" + std::string(user_part) +
                              "\": the image has no /etc/passwd to look the name up in");
    }
    auto it = std::find_if(users.begin(), users.end(),
                           [&](const PasswdEntry& e) { return e.name == user_part; });
    if (it == users.end()) {
      return Fail(ENOENT,
                  "user \"" + std::string(user_part) + "\" is not in the image's /etc/passwd");
    }
    out.uid = it->uid;
    out.gid = it->gid;
    out.home = it->home.empty() ? "/" : it->home;
    user_name = it->name;
  }

  if (group_part) {
    if (AllDigits(*group_part)) {
      auto gid = ParseId(*group_part);
      if (!gid) return Fail(EINVAL, "user \"" + std::string(spec) + "\": gid out of range");
      out.gid = *gid;
    } else {
      if (!group) {
        return Fail(ENOENT, "group \"" + std::string(*group_part) +
                                "\": the image has no /etc/group to look the name up in");
      }
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const GroupEntry& g) { return g.name == *group_part; });
      if (it == groups.end()) {
        return Fail(ENOENT,
                    "group \"" + std::string(*group_part) + "\" is not in the image's /etc/group");
      }
      out.gid = it->gid;
    }
    return out;
  }
  if (!user_name.empty()) {
    for (const GroupEntry& g : groups) {
      if (g.gid == out.gid) continue;
      if (std::find(g.members.begin(), g.members.end(), user_name) == g.members.end()) continue;
      if (std::find(out.additional_gids.begin(), out.additional_gids.end(), g.gid) !=
          out.additional_gids.end()) {
        continue;
      }
      out.additional_gids.push_back(g.gid);
    }
  }
  return out;
}

Result<std::vector<std::string>> ContainerArgs(
    const std::vector<std::string>& entrypoint, const std::vector<std::string>& cmd,
    const std::optional<std::vector<std::string>>& entrypoint_override,
    const std::vector<std::string>& cmd_override) {
  std::vector<std::string> args = entrypoint_override ? *entrypoint_override : entrypoint;
  if (!cmd_override.empty()) {
    args.insert(args.end(), cmd_override.begin(), cmd_override.end());
  } else if (!entrypoint_override) {
    args.insert(args.end(), cmd.begin(), cmd.end());
  }
  if (args.empty()) {
    return Fail(EINVAL,
                "the image has no command (its Entrypoint and Cmd are empty) and none was given");
  }
  if (args[0].empty()) return Fail(EINVAL, "the command's first word is empty");
  return args;
}

std::vector<std::string> ContainerEnv(const std::vector<std::string>& image_env,
                                      const std::vector<std::string>& overrides,
                                      const ExecUser& user, bool terminal) {
  std::vector<std::string> env;
  auto key_of = [](std::string_view kv) { return kv.substr(0, kv.find('=')); };
  auto set = [&](const std::string& kv) {
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& e) { return key_of(e) == key_of(kv); });
    if (it != env.end()) {
      *it = kv;
    } else {
      env.push_back(kv);
    }
  };
  auto has = [&](std::string_view key) {
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return key_of(e) == key; });
  };
  for (const std::string& kv : image_env) set(kv);
  for (const std::string& kv : overrides) set(kv);
  if (!has("PATH")) set("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOME")) set("HOME=" + user.home);
  if (terminal && !has("TERM")) set("TERM=xterm");
  return env;
}

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE",
  };
  return caps;
}

std::vector<std::string> RuntimeSpecMountDestinations() {
  std::vector<std::string> out;
  for (const MountSpec& m : DefaultMounts()) out.emplace_back(m.destination);
  return out;
}

std::string RuntimeSpecJson(const RuntimeSpecOptions& o) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  KeyStr(w, "ociVersion", "1.0.2");

  Str(w, "process");
  w.StartObject();
  Str(w, "terminal");
  w.Bool(o.terminal);
  Str(w, "user");
  w.StartObject();
  Str(w, "uid");
  w.Uint(o.user.uid);
  Str(w, "gid");
  w.Uint(o.user.gid);
  if (!o.user.additional_gids.empty()) {
    Str(w, "additionalGids");
    w.StartArray();
    for (uint32_t g : o.user.additional_gids) w.Uint(g);
    w.EndArray();
  }
  w.EndObject();
  Str(w, "args");
  StrList(w, o.args);
  Str(w, "env");
  StrList(w, o.env);
  KeyStr(w, "cwd", o.cwd.empty() ? "/" : o.cwd);
  Str(w, "capabilities");
  w.StartObject();
  Str(w, "bounding");
  StrList(w, DefaultCapabilities());
  const std::vector<std::string> none;
  const std::vector<std::string>& active = o.user.uid == 0 ? DefaultCapabilities() : none;
  Str(w, "effective");
  StrList(w, active);
  Str(w, "permitted");
  StrList(w, active);
  w.EndObject();
  Str(w, "rlimits");
  w.StartArray();
  w.StartObject();
  KeyStr(w, "type", "RLIMIT_NOFILE");
  Str(w, "hard");
  w.Uint64(o.nofile_hard);
  Str(w, "soft");
  w.Uint64(std::min(o.nofile_soft, o.nofile_hard));
  w.EndObject();
  w.EndArray();
  Str(w, "noNewPrivileges");
  w.Bool(false);
  w.EndObject();  // process

  Str(w, "root");
  w.StartObject();
  KeyStr(w, "path", o.root_path);
  Str(w, "readonly");
  w.Bool(o.readonly_root);
  w.EndObject();
  KeyStr(w, "hostname", o.hostname);

  Str(w, "mounts");
  w.StartArray();
  for (const MountSpec& m : DefaultMounts()) {
    w.StartObject();
    KeyStr(w, "destination", m.destination);
    KeyStr(w, "type", m.type);
    KeyStr(w, "source", m.source);
    Str(w, "options");
    StrList(w, m.options);
    w.EndObject();
  }
  w.EndArray();

  if (!o.annotations.empty()) {
    Str(w, "annotations");
    w.StartObject();
    for (const auto& [k, v] : o.annotations) KeyStr(w, k, v);
    w.EndObject();
  }

  Str(w, "linux");
  w.StartObject();
  Str(w, "namespaces");
  w.StartArray();
  std::vector<std::string> namespaces = {"pid", "ipc", "uts", "mount"};
  if (o.isolated_network) namespaces.push_back("network");
  for (const std::string& ns : namespaces) {
    w.StartObject();
    KeyStr(w, "type", ns);
    w.EndObject();
  }
  w.EndArray();
  Str(w, "maskedPaths");
  StrList(w, {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
              "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
              "/sys/firmware"});
  Str(w, "readonlyPaths");
  StrList(w, {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
  w.EndObject();  // linux

  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

}  // namespace hoist
