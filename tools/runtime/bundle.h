// Bundles: OCI runtime bundles (config.json + rootfs) whose rootfs is a lazy hoistfs mount, as
// `umoci unpack` makes them but without unpacking anything. `hoist bundle` and `hoist run` use
// these functions.
//
// Layout of a bundle directory DIR (absolute paths are recorded in DIR/hoist-bundle.json):
//   always:
//     DIR/lower       the hoistfs mount (-o suid,allow_other)
//   read-only (default), when the image has /proc, /dev, /sys and the working directory:
//     DIR/rootfs      a bind mount of DIR/lower: the hoistfs mount as is; root.readonly true
//   read-only, when one of those is missing (runc cannot create it on a read-only rootfs):
//     DIR/skel        just the missing directories (owners and modes of existing parents
//                     copied from the image, so the merged view keeps them)
//     DIR/rootfs      a read-only overlay, lowerdir=DIR/skel:DIR/lower (no upper)
//   --rw:
//     DIR/upper, DIR/work   the overlay's upper and work directories: every write lands here
//     DIR/rootfs      overlay lowerdir=DIR/lower,upperdir=DIR/upper,workdir=DIR/work
//   DIR/config.json   RuntimeSpecJson (tools/runtime/runtime_spec.h), root.path "rootfs"
//   DIR/hoist-bundle.json   the state: image, mounts in mount order, the hoistfs state file
// Unmounting DIR/rootfs then DIR/lower ends the hoistfs daemon.
//
// Why -o suid,allow_other: setuid binaries (su, ping) must work in a container as under docker,
// and the container's processes run as the image's users, which a FUSE mount without
// allow_other refuses (default_permissions stays on, so file modes are enforced). Plain hoistfs
// mounts keep nosuid.
//
// The state file is written before the first mount and after each one, so `RemoveBundle` can
// always undo a bundle, even one a killed `hoist bundle` left half made.
//
// Thread-safety: CreateBundle/RemoveBundle touch the file system and the mount table; don't
// run two on the same DIR at once.
// Errors: one line. CreateBundle: EEXIST (DIR exists), ENOENT (unknown image, user not in the
// image, no hoistfs), EINVAL (no command, a DIR path with ',' or ':'), the mount's own error;
// on every error nothing stays mounted and DIR is gone. RemoveBundle: ENOENT (not a bundle),
// EBUSY (something under DIR could not be unmounted; DIR is then left in place).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "fetcher/registry.h"

namespace hoist {

struct BundleOptions {
  std::string image;
  std::string dir;  // must not exist; its parent must
  bool rw = false;

  // How to mount: the hoistfs binary ("" = next to /proc/self/exe, else PATH), the host store
  // (--cache; "" = hoistfs's default), more -o options, and the registry settings.
  std::string hoistfs;
  std::string cache_dir;
  std::vector<std::string> mount_options;
  std::vector<std::string> insecure_registries;
  std::string hosts_dir;        // mirrors (hoistfs hosts_dir=); "" = the default
  std::string registries_conf;  // mirrors (hoistfs registries_conf=); "" = the default
  std::string platform;
  std::string log_level;

  // What to run (docker run's overrides; see runtime_spec.h for the rules).
  std::vector<std::string> cmd;
  std::optional<std::vector<std::string>> entrypoint;
  std::string user;     // "" = the image's User
  std::string workdir;  // "" = the image's WorkingDir, else "/"
  std::vector<std::string> env;
  bool terminal = false;
  bool isolated_network = false;
  std::string hostname;  // "" = "hoist"
};

struct Bundle {
  std::string dir;                 // absolute
  std::string image;               // the pinned reference that was mounted (repo@sha256:...)
  std::string hoistfs_mountpoint;  // absolute
  std::string mount_state_file;    // the hoistfs mount's state file (fusefs/stats_file.h)
  uint64_t image_bytes = 0;        // sum of the manifest's layer sizes (compressed)
};

// Resolves the image with `client`, mounts it and writes the bundle. See the file comment.
[[nodiscard]] Result<Bundle> CreateBundle(RegistryClient& client, const BundleOptions& options);

// Unmounts what DIR/hoist-bundle.json lists (overlay first, then hoistfs; waiting for the
// daemon to exit), checks that nothing under DIR is still mounted, and deletes DIR.
[[nodiscard]] Status RemoveBundle(const std::string& dir);

// Mount points at or below `dir` (absolute) in /proc/self/mountinfo, deepest last.
[[nodiscard]] Result<std::vector<std::string>> MountsUnder(const std::string& dir);

}  // namespace hoist
