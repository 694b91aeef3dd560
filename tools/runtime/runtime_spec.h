// RuntimeSpec: the OCI runtime config.json of a hoist bundle, derived from an image config, and
// the resolution of the image's `User` through the image's OWN /etc/passwd and /etc/group.
// Pure functions on strings and plain values: no file, mount or process access, so every rule
// here is unit-tested (tests/tools/runtime_spec_test.cc).
//
// Decisions (what a docker user expects, adjusted to this machine's runc 1.1):
//   - args = Entrypoint + Cmd. A command given on the command line replaces Cmd; an entrypoint
//     override replaces Entrypoint and drops the image's Cmd (docker run --entrypoint). Empty
//     args are EINVAL.
//   - env = the image's Env, then overrides (KEY=VALUE replaces KEY), then HOME from the
//     resolved user's passwd entry (else "/") and a default PATH when absent; TERM=xterm with a
//     terminal.
//   - user: "" means root (0:0). "name", "uid", "name:group", "uid:gid", "name:gid" and
//     "uid:group". A name must be in the image's /etc/passwd (group names in /etc/group):
//     ENOENT otherwise. A numeric uid not in passwd gets gid 0 and HOME "/". Supplementary
//     groups (additionalGids) come from /etc/group membership, and only when no group was
//     given (initgroups' rule, and docker's).
//   - capabilities: docker's default set in the bounding set; effective and permitted as well
//     for uid 0 only (docker 23+ gives a non-root user no effective capabilities; setuid and
//     file-capability binaries still get them from the bounding set). No ambient, no
//     inheritable. noNewPrivileges false (setuid binaries must work as under docker).
//   - namespaces: pid, ipc, uts, mount; network only when isolated_network (then the
//     container has only loopback). The default shares the host network: a runc bundle with its
//     own network namespace has no network at all, and hoist sets up no bridge.
//   - mounts: proc, /dev tmpfs, devpts, /dev/shm tmpfs, mqueue, sysfs read-only; docker's
//     masked and read-only /proc and /sys paths. No cgroup mount, no seccomp profile.
//   - NO linux.resources and no cgroupsPath: runc 1.1 then puts the container in a cgroup named
//     after its id under each hierarchy's root (checked on this machine's cgroup v1 + unified
//     hybrid). Limits are not hoist's business, and crun refuses this cgroup setup when a
//     resources block is present.
//   - rlimits: RLIMIT_NOFILE as given (bundle.cc: soft 1024, hard 524288, each capped at the
//     caller's own hard limit: runc cannot raise it without CAP_SYS_RESOURCE).
//   - root.readonly as asked (true for a read-only bundle).
//   - annotations: the image's Labels, plus "org.opencontainers.image.ref.name" = the image.
//
// Thread-safety: plain values and pure functions.
// Errors: EINVAL for malformed input (a bad uid, empty args), ENOENT for a user or group the
// image does not know, each one line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

// One line of /etc/passwd or /etc/group that parsed.
struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};
struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

// Lines that do not parse (too few fields, non-numeric ids) and comments are skipped.
std::vector<PasswdEntry> ParsePasswd(std::string_view text);
std::vector<GroupEntry> ParseGroup(std::string_view text);

struct ExecUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // file order, without duplicates or the primary gid
  std::string home = "/";
  friend bool operator==(const ExecUser&, const ExecUser&) = default;
};

// Resolves a docker-style user spec (see the file comment). `passwd` / `group` are the files'
// contents, or nullopt when the image has no such file.
[[nodiscard]] Result<ExecUser> ResolveExecUser(std::string_view spec,
                                               const std::optional<std::string>& passwd,
                                               const std::optional<std::string>& group);

// Entrypoint + Cmd with docker's override rules. EINVAL "the image has no command ..." when
// the result is empty.
[[nodiscard]] Result<std::vector<std::string>> ContainerArgs(
    const std::vector<std::string>& entrypoint, const std::vector<std::string>& cmd,
    const std::optional<std::vector<std::string>>& entrypoint_override,
    const std::vector<std::string>& cmd_override);

// The image's env with overrides applied, then HOME/PATH/TERM defaults (see above).
std::vector<std::string> ContainerEnv(const std::vector<std::string>& image_env,
                                      const std::vector<std::string>& overrides,
                                      const ExecUser& user, bool terminal);

// The capabilities docker grants by default ("CAP_CHOWN", ...).
const std::vector<std::string>& DefaultCapabilities();

struct RuntimeSpecOptions {
  std::vector<std::string> args;  // REQUIRES: not empty
  std::vector<std::string> env;
  std::string cwd = "/";  // absolute
  ExecUser user;
  bool terminal = false;
  std::string hostname = "hoist";
  std::string root_path = "rootfs";  // relative to the bundle
  bool readonly_root = true;
  bool isolated_network = false;
  std::map<std::string, std::string> annotations;
  uint64_t nofile_soft = 1024;
  uint64_t nofile_hard = 524288;
};

// The config.json text (ociVersion 1.0.2), pretty-printed, ending in a newline.
std::string RuntimeSpecJson(const RuntimeSpecOptions& options);

// The mount destinations RuntimeSpecJson adds ("/proc", "/dev", "/dev/pts", ...), in order.
// A read-only rootfs must already have the top-level ones (runc cannot create them there).
std::vector<std::string> RuntimeSpecMountDestinations();

}  // namespace hoist
