// containerd's registry host configuration (`hosts.toml` under a `config_path` directory, as ctr,
// nerdctl and containerd's CRI read it): the parser, and the lookup of a registry's file.
//
// Layout: DIR/<registry>/hosts.toml (the registry as in a reference: "docker.io",
// "localhost:5000"), falling back to DIR/_default/hosts.toml.
//
// Format (the fields hoist honours; others are ignored):
//   server = "https://registry-1.docker.io"   # the upstream, tried last (default: the registry)
//   capabilities / skip_verify / ca / client / header / override_path   # for the server
//   [host."https://mirror.example:5000"]        # mirrors, tried in file order before the server
//     capabilities = ["pull", "resolve"]        # default: pull, resolve, push
//     skip_verify = true
//     ca = "ca.crt"  or  ["a.crt", "b.crt"]     # relative paths: to the registry's directory
//     client = "both.pem" | ["c.pem", ...] | [["cert.pem", "key.pem"], ...]
//     override_path = true                      # the URL's path is the API root as is
//     [host."https://mirror.example:5000".header]
//       x-name = "value"  or  ["v1", "v2"]
// A host URL without a scheme is https (http for loopback hosts). Without override_path the API
// root is the URL's path with "/v2" appended unless it already ends in "/v2".
//
// Errors: EINVAL "<file>: <what>" for TOML syntax errors, wrong types, unknown capabilities and
// unparseable URLs; a CA or client file that cannot be read is ENOENT/EACCES naming it.
// Thread-safety: pure functions (LoadHostsToml reads files).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "fetcher/http.h"

namespace hoist {

inline constexpr unsigned kHostPull = 1;
inline constexpr unsigned kHostResolve = 2;
inline constexpr unsigned kHostPush = 4;
inline constexpr unsigned kHostAll = kHostPull | kHostResolve | kHostPush;

// One host of a hosts.toml (a mirror, or the server).
struct HostsTomlHost {
  std::string scheme;  // "https" or "http"
  std::string host;    // host[:port]
  // Path the repository follows, e.g. "/v2" (no trailing '/'; "" = the root, which only
  // override_path with a URL without a path gives).
  std::string api_root;
  unsigned capabilities = kHostAll;
  bool skip_verify = false;
  std::vector<std::string> ca_files;                              // absolute
  std::vector<std::pair<std::string, std::string>> client_certs;  // (cert, key); key may be ""
  HttpHeaderList headers;
  std::string ca_pem;  // the ca_files' contents (MirrorResolver::Load reads them once)
};

struct HostsToml {
  std::string path;                     // the file, for messages
  std::vector<HostsTomlHost> hosts;     // mirrors, in file order
  std::optional<HostsTomlHost> server;  // nullopt: the registry itself, default settings
};

// Parses one file's text. `base_dir` resolves relative ca/client paths; `path` names it in errors.
[[nodiscard]] Result<HostsToml> ParseHostsToml(std::string_view text, std::string_view path,
                                               std::string_view base_dir);

// DIR/<registry>/hosts.toml if it exists, else (when `use_default`) DIR/_default/hosts.toml, else
// nullopt. `*exact` tells which was found.
[[nodiscard]] Result<std::optional<HostsToml>> LoadHostsToml(std::string_view dir,
                                                             std::string_view registry,
                                                             bool use_default, bool* exact);

}  // namespace hoist
