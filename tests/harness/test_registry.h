// TestRegistry: a REAL distribution registry 2.8 (`docker-registry serve CONFIG`) for integration
// tests, on a free 127.0.0.1 port, with filesystem storage in a fresh temporary directory.
//
//   auto reg = TestRegistry::Launch({.auth = RegistryAuthMode::kBasic});
//   ASSERT_TRUE(reg.has_value()) << reg.error().message();
//   (*reg)->host_port();  // "127.0.0.1:40123"
//
// Auth variants: kAnonymous; kBasic (htpasswd with a bcrypt entry made by `htpasswd -Bbn`; the
// registry silently refuses $apr1$ entries); kToken (the registry's `auth: token` mode, trusting a
// TokenServer started alongside; see token_server.h).
//
// Layout of root_dir(): config.yml, htpasswd, storage/ (the registry's rootdirectory),
// registry.log (the application log: JSON lines, debug level) and access.log (the combined-format
// access log: `127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 206 10 "" "agent"`).
//
// What the logs can tell (checked on 2.8.2): the access log has method, path, status and bytes
// sent but NO Range header. At debug level the application log has, per request (same
// http.request.id), a `filesystem.Reader("<path>", <offset>)` line with the START OFFSET the blob
// is read from, and a "response completed" line with status and bytes written. Requests() joins
// them: a 206 with read_offset O and bytes_written N served the range [O, O+N). Requests the
// auth layer refuses get no "response completed" line, only a warning "error authorizing
// context: ..."; Requests() reports those as status 401 with bytes_written 0.
//
// Stop()/Start() restart the registry on the SAME port with the same storage (and the same
// http.secret, so upload sessions stay valid); the token server keeps running.
//
// Lifetime: the destructor stops the registry and the token server (SIGTERM, then SIGKILL,
// reaped) and removes root_dir() unless keep_dir is set or the directory was given.
// Thread-safety: accessors are safe from many threads; Start/Stop/destruction are not concurrent
// with anything else on the same object.
// Errors: Start fails loudly (ENOENT) when docker-registry/htpasswd/openssl/python3 is missing,
// and with ETIMEDOUT plus the tail of registry.log when `GET /v2/` does not answer in time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/token_server.h"

namespace hoist::harness {

enum class RegistryAuthMode { kAnonymous, kBasic, kToken };

struct TestRegistryOptions {
  RegistryAuthMode auth = RegistryAuthMode::kAnonymous;
  // Credentials for kBasic (htpasswd) and kToken (checked by the token server).
  std::string user = "hoist";
  std::string password = "hoist-test-password";
  // kToken: lifetime of issued tokens (changeable later via token_server()->SetTokenTtl).
  int token_ttl_seconds = 300;
  // Root directory; empty = a fresh mkdtemp under $TMPDIR (default /tmp), removed at the end.
  std::string root_dir;
  bool keep_dir = false;
  // 0 = a free port chosen by the kernel.
  uint16_t port = 0;
  // The IPv4 address to listen on (another of this host's addresses reaches the registry from
  // off loopback, where clients need --insecure-registry for plain HTTP).
  std::string host = "127.0.0.1";
  // Debug-level application log (needed for read offsets in Requests()).
  bool debug_log = true;
  // `storage.delete.enabled`: false makes the registry answer DELETE with 405.
  bool delete_enabled = true;
  // `catalog.maxentries`: the registry's largest catalog page.
  int catalog_max_entries = 1000;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(20)};
  // Non-empty: distribution's pull-through cache mode (`proxy: remoteurl: URL`), e.g. another
  // TestRegistry's base_url(); the registry then serves pulls by fetching from there.
  std::string proxy_remote_url;
  // kToken: the realm the registry's challenges name ("" = the token server's own http realm),
  // e.g. a TLS front of the token server (tests/harness/tls_proxy.py).
  std::string token_realm;
};

// One HTTP request as the registry logged it.
struct RegistryRequest {
  std::string id;      // http.request.id
  std::string method;  // GET HEAD PUT ...
  std::string uri;     // path and query as sent
  int status = 0;
  uint64_t bytes_written = 0;           // response body bytes
  std::optional<uint64_t> read_offset;  // start offset of the blob read, if a blob was read
  std::string user_agent;
  std::string auth_user;  // auth.user.name (Basic) or the token's subject, if logged

  bool IsBlobGet() const;  // GET /v2/<name>/blobs/sha256:...
};

class TestRegistry {
 public:
  [[nodiscard]] static Result<std::unique_ptr<TestRegistry>> Launch(
      TestRegistryOptions options = {});
  ~TestRegistry();
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  // Stops the registry process (SIGTERM, 5 s, SIGKILL; reaped). `kill` = SIGKILL at once.
  void Stop(bool kill = false);
  // (Re)starts it on the same port with the same storage; waits for `GET /v2/`.
  [[nodiscard]] Status Start();
  bool running();

  // "127.0.0.1:PORT" (use as Reference::registry and with skopeo's docker:// transport).
  const std::string& host_port() const { return host_port_; }
  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT".
  std::string base_url() const { return "http://" + host_port_; }
  // "127.0.0.1:PORT/<repo>:<tag>" and "docker://127.0.0.1:PORT/<repo>:<tag>".
  std::string ImageRef(const std::string& repo, const std::string& tag = "latest") const;
  std::string DockerRef(const std::string& repo, const std::string& tag = "latest") const;

  RegistryAuthMode auth_mode() const { return options_.auth; }
  // Credentials valid for this registry (empty for kAnonymous).
  std::string user() const;
  std::string password() const;
  // "user:password" for skopeo --creds, empty for kAnonymous.
  std::string skopeo_creds() const;
  // The token server (kToken only; nullptr otherwise).
  TokenServer* token_server() const { return token_server_.get(); }

  const std::string& root_dir() const { return root_dir_; }
  std::string storage_dir() const { return root_dir_ + "/storage"; }
  std::string config_path() const { return root_dir_ + "/config.yml"; }
  std::string registry_log_path() const { return root_dir_ + "/registry.log"; }
  std::string access_log_path() const { return root_dir_ + "/access.log"; }
  // storage/docker/registry/v2/blobs/sha256/<xx>/<hex>/data for a "sha256:<hex>" digest.
  std::string BlobPath(const std::string& digest) const;

  // The access log's lines (combined format), optionally only those containing `needle`.
  [[nodiscard]] Result<std::vector<std::string>> AccessLogLines(
      const std::string& needle = "") const;
  // A position in the application log; pass it to Requests() to see only later requests.
  uint64_t LogMark() const;
  // The requests logged since `mark` (from "response completed" lines, joined with their
  // filesystem.Reader offsets), in completion order.
  [[nodiscard]] Result<std::vector<RegistryRequest>> Requests(uint64_t mark = 0) const;

 private:
  TestRegistry() = default;
  Status WriteConfig();
  Status StartOnce();

  TestRegistryOptions options_;
  bool owns_dir_ = false;
  std::string root_dir_;
  uint16_t port_ = 0;
  std::string host_port_;
  std::unique_ptr<TokenServer> token_server_;
  ChildProcess process_;
};

}  // namespace hoist::harness
