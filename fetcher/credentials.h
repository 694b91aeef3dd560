// Registry credentials: where they come from and how they are saved.
//
// DockerCredentialStore reads, in this order (first source that has something for the registry
// wins; a source that has nothing, or a helper that exits non-zero, falls through):
//   1. $REGISTRY_AUTH_FILE (containers auth.json format: {"auths": {...}}), if set;
//   2. the docker config ($DOCKER_CONFIG/config.json, default ~/.docker/config.json):
//        credHelpers[host] -> `docker-credential-<x> get`, then credsStore -> the same,
//        then auths[key] (keys may carry a scheme and a path, which are ignored);
//   3. ${XDG_RUNTIME_DIR}/containers/auth.json.
// An auths entry holds `auth` (base64 "user:pass"), `identitytoken` (an OAuth2 refresh token) or
// `registrytoken` (a bearer token used as is). A helper gets the server URL on stdin and prints
// {"ServerURL","Username","Secret"}; Username "<token>" means Secret is an identity token.
// Docker Hub ("docker.io") is looked up under "https://index.docker.io/v1/" (and also the bare
// host names "docker.io", "index.docker.io", "registry-1.docker.io").
//
// Files are read at each Lookup (so a `hoist login` in another process is seen). A missing file
// is not an error; an unreadable or malformed one is (EINVAL/EACCES naming the file).
//
// Thread-safety: Lookup is safe from many threads (no mutable state; helpers run per call).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

struct Credential {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token for the token endpoint
  std::string registry_token;  // bearer token sent as is

  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
  friend bool operator==(const Credential&, const Credential&) = default;
};

class CredentialStore {
 public:
  virtual ~CredentialStore() = default;
  // Credentials for `registry` (a normalised Reference::registry: "docker.io", "host:port").
  // An empty Credential means anonymous. An error means a source was broken (not "not found").
  [[nodiscard]] virtual Result<Credential> Lookup(std::string_view registry) const = 0;
};

// No credentials for anyone.
class AnonymousCredentialStore : public CredentialStore {
 public:
  Result<Credential> Lookup(std::string_view) const override { return Credential{}; }
};

// Fixed credentials per registry (tests, `--creds user:pass`).
class StaticCredentialStore : public CredentialStore {
 public:
  explicit StaticCredentialStore(std::map<std::string, Credential, std::less<>> entries)
      : entries_(std::move(entries)) {}
  Result<Credential> Lookup(std::string_view registry) const override;

 private:
  std::map<std::string, Credential, std::less<>> entries_;
};

struct DockerCredentialOptions {
  // The docker config directory; "" = $DOCKER_CONFIG, else $HOME/.docker.
  std::string docker_config_dir;
  // containers auth.json files tried before (registry_auth_file) and after
  // (xdg_auth_file) the docker config; "" = from $REGISTRY_AUTH_FILE /
  // ${XDG_RUNTIME_DIR}/containers/auth.json. Set to "-" to disable one.
  std::string registry_auth_file;
  std::string xdg_auth_file;
};

class DockerCredentialStore : public CredentialStore {
 public:
  explicit DockerCredentialStore(DockerCredentialOptions options = {});
  Result<Credential> Lookup(std::string_view registry) const override;

  // The resolved docker config.json path.
  const std::string& docker_config_path() const { return docker_config_path_; }

 private:
  std::string docker_config_path_;
  std::string registry_auth_file_;
  std::string xdg_auth_file_;
};

// The key docker uses for `registry` in config.json: "https://index.docker.io/v1/" for
// docker.io (and its aliases), else the registry host[:port] itself.
std::string DockerConfigKey(std::string_view registry);

// The docker config.json path from $DOCKER_CONFIG or $HOME/.docker ("" if neither is set).
std::string DefaultDockerConfigPath();

// Runs `docker-credential-<helper> get` (found on $PATH) with `server_url` on stdin.
// Returns an empty Credential when the helper exits non-zero (no credentials); errors for a
// helper that cannot be run (ENOENT) or prints malformed JSON (EINVAL).
[[nodiscard]] Result<Credential> RunCredentialHelper(std::string_view helper,
                                                     std::string_view server_url);

// The credential helper the docker config.json at `config_path` names for `registry`:
// credHelpers[registry or its DockerConfigKey], else credsStore; "" when it names none (or the
// file is missing). EINVAL for a malformed file.
[[nodiscard]] Result<std::string> CredentialHelperFor(const std::string& config_path,
                                                      std::string_view registry);

// `docker-credential-<helper> store` with {"ServerURL","Username","Secret"} on stdin, and
// `docker-credential-<helper> erase` with the server URL on stdin. ENOENT for a helper that is
// not on $PATH, EIO (naming the helper and its exit status) when it fails.
[[nodiscard]] Status StoreWithCredentialHelper(std::string_view helper, std::string_view server_url,
                                               std::string_view username, std::string_view secret);
[[nodiscard]] Status EraseWithCredentialHelper(std::string_view helper,
                                               std::string_view server_url);

// Writers for `hoist login` / `hoist logout`: edit auths[DockerConfigKey(registry)] in the
// docker config.json at `config_path`, keeping every other key, via WriteFileAtomic (mode 0600).
// Creates the file and its directory if missing. Remove of an absent entry is not an error.
// As docker does, when the file names a helper for the registry (CredentialHelperFor) the
// secret goes to the helper (`store` / `erase`, with the DockerConfigKey as ServerURL) and
// auths gets an empty entry for the registry ({}: no secret in the file); a helper that fails
// writes nothing to the file.
[[nodiscard]] Status SaveDockerAuth(const std::string& config_path, std::string_view registry,
                                    std::string_view username, std::string_view password);
[[nodiscard]] Status RemoveDockerAuth(const std::string& config_path, std::string_view registry);

}  // namespace hoist
