// MountOptions: what `hoistfs [-o opt,...] IMAGE MOUNTPOINT` (and `mount -t fuse.hoistfs`,
// /etc/fstab, `hoist mount`) can ask for, parsed from mount.fuse-style "-o a,b=c" strings, and
// the FUSE mount option string derived from them.
//
// Options (-o):
//   timeout=SECONDS        bound on a read that must wait for the network (default 30)
//   prefetch=none|priority|all   background fetch after mount (default all)
//   prefetch_trace=auto|off|FILE  the files a start reads, fetched first (trace_prefetch.h):
//                          auto (default) looks for a trace published to the registry for the
//                          image; FILE reads one from the host; off uses none. Not with
//                          prefetch=none.
//   bandwidth=BYTES        prefetch cap in bytes/s (suffixes k, m, g; 0 = none)
//   elf_prefetch=0|1       when an ELF program or library is opened, fetch the libraries the
//                          loader will open after it, in the background (default 1; elf_prefetch.h)
//   dir_prefetch=0|1       when a file that is not local is opened, fetch the other small files
//                          of its directory, in the background (default 1; dir_prefetch.h)
//   cache=DIR              host store (also --cache DIR, env HOIST_CACHE; store.h default)
//   cache_size=BYTES       chunk cache quota (suffixes k, m, g); also the disk the mount's
//                          unconverted layers' stream files may use in all (stream_layer.h)
//   insecure_registry=HOST plain-http registry (repeatable)
//   hosts_dir=DIR          containerd hosts.toml directory for mirrors (default
//                          /etc/containerd/certs.d; "none" = not read; fetcher/mirror_resolver.h)
//   registries_conf=FILE   containers registries.conf for mirrors (default
//                          $CONTAINERS_REGISTRIES_CONF or /etc/containers/registries.conf)
//   mirror_connect_timeout=MS  connect bound for a mirror before the next host (default 3000)
//   platform=OS/ARCH[/V]   platform to pick from an index
//   log_level=LEVEL        debug|info|warning|error|off (default warning)
//   log_file=PATH          where the daemon logs after it detaches (default: nowhere)
//   offline                no registry: the image and its blobs from the local store only
//   connect_timeout=SECONDS  when the store holds a copy of the image (pulled, loaded, or
//                          recorded by an earlier mount): how long the registry gets (one
//                          attempt, no retry) before that copy is mounted instead, and then the
//                          bound on each read of content the copy lacks (default 5)
//   trace=FILE             record which files are opened (fusefs/trace_recorder.h) and write
//                          the access trace (fusefs/access_trace.h) to FILE, atomically, when
//                          the mount ends (unmount or signal) and when it is handed over to a
//                          new daemon (which carries the trace on); hoistfs makes FILE absolute
//   metrics=ADDR           serve Prometheus metrics at http://ADDR/metrics: a loopback
//                          HOST:PORT or unix:PATH (metrics/http_server.h; checked here)
//   allow_other            only on request, and always with default_permissions
//   suid                   only on request (default nosuid)
//   ro, rw, nodev, nosuid, default_permissions and generic mount(8) options (auto, noauto,
//   user, nouser, _netdev, nofail, exec, noexec, atime, noatime, relatime, defaults, x-*) are
//   accepted and ignored: the mount is always ro (mount(8) passes "rw" when "ro" is not
//   given). `dev` is accepted and ignored: the mount is always nodev.
// mount -t fuse.hoistfs: mount(8) runs mount.fuse3 (the fuse.TYPE helper), which runs
//   `hoistfs SOURCE MOUNTPOINT -o rw,<opts>[,dev,suid]` from PATH; it appends "dev,suid" when the
//   options name neither nodev nor nosuid. A list holding both `dev` and `suid` is therefore
//   read as mount.fuse3's default, and the mount stays nosuid; to really ask for suid through
//   mount(8), write `-o nodev,suid`.
// Unknown options are EINVAL naming the option.
//
// The FUSE options are always: ro,nodev,default_permissions,fsname=hoist:IMAGE,
// subtype=hoistfs,max_read=1048576, plus nosuid unless suid, plus allow_other on request.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "fusefs/prefetcher.h"

namespace hoist {

struct MountOptions {
  std::string image;
  std::string mountpoint;
  bool foreground = false;
  bool fuse_debug = false;
  std::chrono::milliseconds timeout{30000};
  PrefetchMode prefetch = PrefetchMode::kAll;
  std::string prefetch_trace = "auto";  // auto | off | a host path
  uint64_t bandwidth_bytes_per_sec = 0;
  bool elf_prefetch = true;
  bool dir_prefetch = true;
  int warm_connections = 8;
  std::string cache_dir;    // "" = ResolveCacheDir's default (HOIST_CACHE, then per-user)
  uint64_t cache_size = 0;  // 0 = the store's default quota
  std::vector<std::string> insecure_registries;
  std::string hosts_dir;        // "" = the default (fetcher/mirror_resolver.h UseMirrors)
  std::string registries_conf;  // likewise
  int mirror_connect_timeout_ms = 0;
  std::string platform;
  std::string log_level = "warning";
  std::string log_file;
  std::string trace_file;       // -o trace=FILE: "" = no access trace
  std::string metrics_address;  // -o metrics=ADDR: "" = no metrics endpoint
  bool allow_other = false;
  bool suid = false;
  bool offline = false;  // mount from the local store only (fusefs/local_image.h)
  std::chrono::milliseconds connect_timeout{5000};  // see connect_timeout= above
  std::string state_dir;                            // "" = DefaultStateDir()
  std::chrono::milliseconds stats_interval{1000};
  // Layer store only (layer_store.h): how long a resolution of an image named by tag is reused.
  std::chrono::milliseconds tag_reuse{10000};
  unsigned max_threads = 64;  // FUSE worker threads
};

// "123", "4k", "10M", "2g" (powers of 1024). EINVAL otherwise.
[[nodiscard]] Result<uint64_t> ParseByteSize(std::string_view text);

// Applies one comma-separated -o list ("a,b=c") to `options`.
[[nodiscard]] Status ApplyMountOptionList(std::string_view list, MountOptions* options);

// The -o string hoistfs hands to fuse_session_new.
std::string FuseMountOptionString(const MountOptions& options);

}  // namespace hoist
