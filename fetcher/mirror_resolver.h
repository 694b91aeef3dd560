// MirrorResolver: which hosts serve a registry request, in order, from the mirror configuration
// nodes already have — containerd's hosts.toml directory (fetcher/hosts_toml.h) and containers'
// registries.conf (fetcher/registries_conf.h). One resolver serves the CLI, hoistfs, the
// snapshotter and the layer store (RegistryOptions::mirrors); RegistryCore asks it for every
// manifest and blob request (Range reads included) and tries the hosts in order, falling
// through to the next one when a host fails that request.
//
// Precedence per registry: DIR/<registry>/hosts.toml if it exists; else the longest matching
// registries.conf [[registry]]; else DIR/_default/hosts.toml; else the registry alone.
//
// hosts.toml: the [host.*] entries whose capabilities allow the request (manifests by tag need
// "resolve", everything else "pull"), then the server if it allows it; a host other than the
// registry's own gets `?ns=<registry>` as containerd sends. Credentials are those of the host
// contacted.
// registries.conf: the mirrors in order (none for tags under mirror-by-digest-only; a mirror's
// pull-from-mirror filters by tag/digest), then the location; both rewrite the matched prefix.
// `insecure` makes a non-loopback host reachable over https without verification, then plain
// http. `blocked` refuses every request with EACCES. Mirrors use their own credentials.
//
// Pushes (RegistryAccess::kPush) go to ONE host, as containerd and containers/image push:
// hosts.toml's first host with the "push" capability (its [host] entries in order, then the
// server; ENOENT when none has it); with registries.conf, the registry the reference names (no
// mirrors, no `location` rewriting; `insecure` and `blocked` apply).
// Tag listings (kListTags): hosts.toml's hosts allowed to "resolve", in order (containerd resolves
// tags only there; it lists no tags itself); registries.conf: the registry itself, as skopeo
// list-tags (containers/image GetRepositoryTags).
// The catalog and login (GET /v2/) always go to the registry itself (no resolver involved).
//
// Thread-safety: immutable after Load; Endpoints may run on many threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "fetcher/hosts_toml.h"
#include "fetcher/http.h"
#include "fetcher/registries_conf.h"
#include "fetcher/registry.h"

namespace hoist {

inline constexpr std::string_view kDefaultHostsDir = "/etc/containerd/certs.d";
inline constexpr std::string_view kDefaultRegistriesConf = "/etc/containers/registries.conf";

// One host to try for one request.
struct MirrorEndpoint {
  std::string origin;            // "https://host[:port]"
  std::string api_root;          // "/v2" (or an override path)
  std::string repository;        // the repository on this host (after prefix rewriting)
  std::string ns;                // value of the ?ns= parameter ("" = none)
  std::string credentials_host;  // host[:port] whose credentials are sent
  bool mirror = false;           // not the registry's own server / location
  HttpTlsOptions tls;
  HttpHeaderList headers;

  // origin + api_root + "/" + repository + "/" + suffix [+ "?ns=..."].
  std::string Url(std::string_view suffix) const;
  // "host[:port]" of origin (for logs).
  std::string Host() const;
};

struct MirrorConfig {
  // hosts.toml directory ("" = none). Missing is an error only when `hosts_dir_required`.
  std::string hosts_dir = std::string(kDefaultHostsDir);
  bool hosts_dir_required = false;
  // registries.conf ("" = none); FILE.d/ is read too. Missing is an error only when required.
  std::string registries_conf = std::string(kDefaultRegistriesConf);
  bool registries_conf_required = false;

  // The defaults: $CONTAINERS_REGISTRIES_CONF (required when set) or the system file, and the
  // containerd certs.d directory.
  static MirrorConfig Defaults();
};

class MirrorResolver {
 public:
  // Reads and validates every hosts.toml under the directory and the registries.conf files.
  [[nodiscard]] static Result<std::shared_ptr<const MirrorResolver>> Load(
      const MirrorConfig& config);
  // From already-parsed configs (tests). `hosts` maps a registry (or "_default") to its file.
  static std::shared_ptr<const MirrorResolver> FromParsed(std::map<std::string, HostsToml> hosts,
                                                          RegistriesConf conf);

  // The hosts to try, in order; never empty on success. `default_origin` is the registry's own
  // origin ("https://host", RegistryCore::BaseUrl); `plain_http` says whether a host[:port] is
  // reached over http (loopback, --insecure-registry).
  // Errors: EACCES "<registry>/<repo>: blocked by <file>:<line>"; ENOENT when no host may serve
  // the request (e.g. no host with the resolve capability). kPush: one host (registries.conf
  // `insecure`: that host over https without verification, then over http).
  [[nodiscard]] Result<std::vector<MirrorEndpoint>> Endpoints(
      std::string_view registry, std::string_view repository, RegistryAccess access,
      std::string_view default_origin,
      const std::function<bool(std::string_view host)>& plain_http) const;

  // True when some configuration names mirrors or rewrites for `registry` (any repository).
  bool empty() const { return hosts_.empty() && conf_.registries.empty(); }

 private:
  std::map<std::string, HostsToml> hosts_;  // directory name -> file
  RegistriesConf conf_;
};

// What every tool does with its --hosts-dir / --registries-conf (hoistfs: hosts_dir= /
// registries_conf=): "" = the default location (missing is no error; $CONTAINERS_REGISTRIES_CONF
// when set), a path = that one (missing is ENOENT), "none" = not read. Loads the resolver into
// options->mirrors; a connect_timeout > 0 sets options->mirror_connect_timeout.
[[nodiscard]] Status UseMirrors(RegistryOptions* options, std::string_view hosts_dir,
                                std::string_view registries_conf,
                                std::chrono::milliseconds connect_timeout = {});

}  // namespace hoist
