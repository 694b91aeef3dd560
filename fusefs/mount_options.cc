#include "fusefs/mount_options.h"

#include <charconv>
#include <limits>

#include "fusefs/fuse_ops.h"
#include "metrics/http_server.h"

namespace hoist {
namespace {

Result<uint64_t> ParseUint(std::string_view text, std::string_view what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return Fail(EINVAL, std::string(what) + ": \"" + std::string(text) + "\" is not a number");
  return v;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  uint64_t mult = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        mult = 1ull << 10;
        break;
      case 'm':
      case 'M':
        mult = 1ull << 20;
        break;
      case 'g':
      case 'G':
        mult = 1ull << 30;
        break;
      default:
        break;
    }
    if (mult != 1) text.remove_suffix(1);
  }
  HOIST_ASSIGN_OR_RETURN(uint64_t v, ParseUint(text, "byte size"));
  if (v > std::numeric_limits<uint64_t>::max() / mult)
    return Fail(EINVAL, "byte size \"" + std::string(text) + "\" is too large");
  return v * mult;
}

Status ApplyMountOptionList(std::string_view list, MountOptions* o) {
  bool saw_dev = false;
  bool saw_suid = false;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view opt = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (opt.empty()) continue;
    const size_t eq = opt.find('=');
    const std::string key(opt.substr(0, eq));
    const std::string value(eq == std::string_view::npos ? "" : opt.substr(eq + 1));
    const bool has_value = eq != std::string_view::npos;
    auto need_value = [&]() -> Status {
      if (!has_value || value.empty())
        return Fail(EINVAL, "mount option \"" + key + "\" needs a value");
      return Ok();
    };
    if (key == "timeout") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_ASSIGN_OR_RETURN(uint64_t s, ParseUint(value, "timeout"));
      if (s == 0 || s > 86400) return Fail(EINVAL, "timeout must be 1..86400 seconds");
      o->timeout = std::chrono::seconds(s);
    } else if (key == "prefetch") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_ASSIGN_OR_RETURN(o->prefetch, ParsePrefetchMode(value));
    } else if (key == "prefetch_trace") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->prefetch_trace = value;
    } else if (key == "bandwidth") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_ASSIGN_OR_RETURN(o->bandwidth_bytes_per_sec, ParseByteSize(value));
    } else if (key == "elf_prefetch") {
      if (value != "0" && value != "1")
        return Fail(EINVAL, "mount option \"elf_prefetch\" must be 0 or 1");
      o->elf_prefetch = value == "1";
    } else if (key == "dir_prefetch") {
      if (value != "0" && value != "1")
        return Fail(EINVAL, "mount option \"dir_prefetch\" must be 0 or 1");
      o->dir_prefetch = value == "1";
    } else if (key == "cache") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->cache_dir = value;
    } else if (key == "cache_size") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_ASSIGN_OR_RETURN(o->cache_size, ParseByteSize(value));
    } else if (key == "hosts_dir") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->hosts_dir = value;
    } else if (key == "registries_conf") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->registries_conf = value;
    } else if (key == "mirror_connect_timeout") {
      HOIST_RETURN_IF_ERROR(need_value());
      int ms = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (ec != std::errc() || end != value.data() + value.size() || ms <= 0 || ms > 3600000) {
        return Fail(EINVAL, "mount option \"mirror_connect_timeout\" must be 1..3600000 ms");
      }
      o->mirror_connect_timeout_ms = ms;
    } else if (key == "insecure_registry") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->insecure_registries.push_back(value);
    } else if (key == "platform") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->platform = value;
    } else if (key == "log_level") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->log_level = value;
    } else if (key == "log_file") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->log_file = value;
    } else if (key == "metrics") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_RETURN_IF_ERROR(metrics::ParseAddress(value));
      o->metrics_address = value;
    } else if (key == "trace") {
      HOIST_RETURN_IF_ERROR(need_value());
      o->trace_file = value;
    } else if (key == "offline") {
      o->offline = true;
    } else if (key == "connect_timeout") {
      HOIST_RETURN_IF_ERROR(need_value());
      HOIST_ASSIGN_OR_RETURN(uint64_t s, ParseUint(value, "connect_timeout"));
      if (s == 0 || s > 3600) return Fail(EINVAL, "connect_timeout must be 1..3600 seconds");
      o->connect_timeout = std::chrono::seconds(s);
    } else if (key == "allow_other") {
      o->allow_other = true;
    } else if (key == "suid") {
      o->suid = true;
      saw_suid = true;
    } else if (key == "nosuid") {
      o->suid = false;
    } else if (key == "debug") {
      o->fuse_debug = true;
    } else if (key == "dev") {
      saw_dev = true;  // ignored: hoist mounts are always nodev
    } else if (key == "rw" || key == "ro" || key == "nodev" || key == "default_permissions" ||
               key == "auto" || key == "noauto" || key == "user" || key == "nouser" ||
               key == "users" || key == "_netdev" || key == "nofail" || key == "exec" ||
               key == "noexec" || key == "atime" || key == "noatime" || key == "relatime" ||
               key == "defaults" || key == "x-systemd.automount" || key.starts_with("x-") ||
               key.starts_with("comment=")) {
      // Generic mount(8) options: accepted; the FUSE options below are fixed.
    } else {
      return Fail(EINVAL, "unknown mount option \"" + std::string(opt) + "\"");
    }
  }
  // mount.fuse3 appends "dev,suid" to every list that names neither nodev nor nosuid (mount(8)
  // defaults for root); that pair is not a request for setuid binaries.
  if (saw_dev && saw_suid) o->suid = false;
  return Ok();
}

std::string FuseMountOptionString(const MountOptions& o) {
  std::string s = "ro,nodev,default_permissions";
  s += o.suid ? ",suid" : ",nosuid";  // libfuse mounts nosuid unless told "suid"
  if (o.allow_other) s += ",allow_other";
  std::string fsname = "hoist:" + o.image;
  // FUSE's option parser splits on ',' and treats '\' as an escape.
  std::string escaped;
  for (char c : fsname) {
    if (c == ',' || c == '\\') escaped += '\\';
    escaped += c;
  }
  s += ",fsname=" + escaped + ",subtype=hoistfs,max_read=" + std::to_string(kMaxRead);
  return s;
}

}  // namespace hoist
