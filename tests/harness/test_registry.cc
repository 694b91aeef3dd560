#include "tests/harness/test_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <thread>

#include <rapidjson/document.h>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "tests/harness/simple_http.h"

namespace hoist::harness {
namespace {

using Clock = std::chrono::steady_clock;

Result<uint16_t> PickFreePort(const std::string& host) {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Fail(ErrnoError("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Fail(EINVAL, "\"" + host + "\" is not an IPv4 address");
  }
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Fail(ErrnoError("bind " + host + ":0"));
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Fail(ErrnoError("getsockname"));
  }
  return ntohs(addr.sin_port);
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::string TailOfFile(const std::string& path, size_t max = 1500) {
  auto text = ReadFile(path);
  if (!text) return "(no log)";
  std::string t = text->size() > max ? text->substr(text->size() - max) : *text;
  return t;
}

std::string GetString(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return "";
  if (it->value.IsString()) return it->value.GetString();
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  if (it->value.IsUint64()) return std::to_string(it->value.GetUint64());
  return "";
}

uint64_t GetUint(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd()) return 0;
  if (it->value.IsUint64()) return it->value.GetUint64();
  if (it->value.IsInt64()) return static_cast<uint64_t>(it->value.GetInt64());
  if (it->value.IsString()) return std::strtoull(it->value.GetString(), nullptr, 10);
  if (it->value.IsDouble()) return static_cast<uint64_t>(it->value.GetDouble());
  return 0;
}

}  // namespace

bool RegistryRequest::IsBlobGet() const {
  return method == "GET" && uri.find("/blobs/sha256:") != std::string::npos;
}

Result<std::unique_ptr<TestRegistry>> TestRegistry::Launch(TestRegistryOptions options) {
  HOIST_RETURN_IF_ERROR(RequirePrograms({"docker-registry"}));
  if (options.auth == RegistryAuthMode::kBasic)
    HOIST_RETURN_IF_ERROR(RequirePrograms({"htpasswd"}));
  std::unique_ptr<TestRegistry> reg(new TestRegistry());
  reg->options_ = options;
  if (options.root_dir.empty()) {
    const char* tmp = ::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hoist-registry-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return Fail(ErrnoError("mkdtemp " + templ));
    reg->root_dir_ = templ;
    reg->owns_dir_ = !options.keep_dir;
  } else {
    reg->root_dir_ = options.root_dir;
    HOIST_RETURN_IF_ERROR(MakeDirs(reg->root_dir_));
  }
  HOIST_RETURN_IF_ERROR(MakeDirs(reg->storage_dir()));

  if (options.auth == RegistryAuthMode::kBasic) {
    // bcrypt only: the registry silently refuses Apache MD5 ($apr1$) entries.
    HOIST_ASSIGN_OR_RETURN(std::string line,
                           RunChecked({"htpasswd", "-Bbn", options.user, options.password}));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(reg->root_dir_ + "/htpasswd", line + "\n", 0644));
  }
  if (options.auth == RegistryAuthMode::kToken) {
    TokenServerOptions token_options;
    token_options.dir = reg->root_dir_ + "/token";
    token_options.user = options.user;
    token_options.password = options.password;
    token_options.ttl_seconds = options.token_ttl_seconds;
    HOIST_ASSIGN_OR_RETURN(reg->token_server_, TokenServer::Start(token_options));
  }

  // With a kernel-chosen port another process may grab it between our probe and the registry's
  // bind; retry with a new port then.
  const int attempts = options.port == 0 ? 5 : 1;
  Status last = Ok();
  for (int i = 0; i < attempts; ++i) {
    if (options.port != 0) {
      reg->port_ = options.port;
    } else {
      HOIST_ASSIGN_OR_RETURN(reg->port_, PickFreePort(options.host));
    }
    reg->host_port_ = options.host + ":" + std::to_string(reg->port_);
    HOIST_RETURN_IF_ERROR(reg->WriteConfig());
    last = reg->StartOnce();
    if (last) return reg;
    if (last.error().code() != EADDRINUSE) break;
  }
  return Fail(last.error());
}

TestRegistry::~TestRegistry() {
  Stop();
  token_server_.reset();
  if (owns_dir_) (void)RemoveTree(root_dir_);
}

Status TestRegistry::WriteConfig() {
  std::string c;
  c += "version: 0.1\n";
  c += "log:\n";
  c += std::string("  level: ") + (options_.debug_log ? "debug" : "info") + "\n";
  c += "  formatter: json\n";
  c += "  accesslog:\n    disabled: false\n";
  c += "storage:\n";
  c += "  filesystem:\n    rootdirectory: " + storage_dir() + "\n";
  c +=
      std::string("  delete:\n    enabled: ") + (options_.delete_enabled ? "true" : "false") + "\n";
  c += "  maintenance:\n    uploadpurging:\n      enabled: false\n";
  c += "http:\n";
  c += "  addr: " + host_port_ + "\n";
  c += "  secret: hoist-test-http-secret\n";
  c += "catalog:\n  maxentries: " + std::to_string(options_.catalog_max_entries) + "\n";
  if (!options_.proxy_remote_url.empty()) {
    c += "proxy:\n  remoteurl: " + options_.proxy_remote_url + "\n";
  }
  switch (options_.auth) {
    case RegistryAuthMode::kAnonymous:
      break;
    case RegistryAuthMode::kBasic:
      c +=
          "auth:\n  htpasswd:\n    realm: hoist-test-basic\n    path: " + root_dir_ + "/htpasswd\n";
      break;
    case RegistryAuthMode::kToken:
      c += "auth:\n  token:\n";
      c += "    realm: " +
           (options_.token_realm.empty() ? token_server_->realm() : options_.token_realm) + "\n";
      c += "    service: " + token_server_->options().service + "\n";
      c += "    issuer: " + token_server_->options().issuer + "\n";
      c += "    rootcertbundle: " + token_server_->cert_path() + "\n";
      break;
  }
  return WriteFileAtomic(config_path(), c, 0644);
}

Status TestRegistry::Start() {
  if (process_.Running()) return Ok();
  return StartOnce();
}

Status TestRegistry::StartOnce() {
  const uint64_t mark = FileSize(registry_log_path());
  ChildProcess::Options child_options;
  child_options.stdout_path = access_log_path();    // the combined-format access log
  child_options.stderr_path = registry_log_path();  // logrus JSON lines
  HOIST_ASSIGN_OR_RETURN(
      process_, ChildProcess::Start({"docker-registry", "serve", config_path()}, child_options));
  const std::string listening = "listening on " + host_port_;
  const auto deadline = Clock::now() + options_.start_timeout;
  bool bound = false;
  while (Clock::now() < deadline) {
    if (!process_.Running()) {
      std::string tail = TailOfFile(registry_log_path());
      std::string log = tail.size() > 600 ? tail.substr(tail.size() - 600) : tail;
      for (char& ch : log) {
        if (ch == '\n') ch = ' ';
      }
      const bool in_use = tail.find("address already in use") != std::string::npos;
      return Fail(in_use ? EADDRINUSE : EIO,
                  "docker-registry on " + host_port_ + " exited at start: " + log);
    }
    if (!bound) {
      auto text = ReadFile(registry_log_path());
      bound = text && text->size() > mark && text->find(listening, mark) != std::string::npos;
    }
    if (bound) {
      SimpleHttpRequest probe;
      probe.url = base_url() + "/v2/";
      probe.timeout = std::chrono::milliseconds(2000);
      auto r = HttpFetch(probe);
      if (r && (r->status == 200 || r->status == 401) &&
          r->Header("docker-distribution-api-version") == "registry/2.0") {
        return Ok();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  process_.Kill();
  return Fail(ETIMEDOUT, "docker-registry on " + host_port_ + " did not answer GET /v2/ within " +
                             std::to_string(options_.start_timeout.count()) +
                             " ms; log: " + TailOfFile(registry_log_path(), 600));
}

void TestRegistry::Stop(bool kill) {
  if (kill) {
    process_.Kill();
  } else {
    process_.Terminate(std::chrono::seconds(5));
  }
}

bool TestRegistry::running() { return process_.Running(); }

std::string TestRegistry::ImageRef(const std::string& repo, const std::string& tag) const {
  return host_port_ + "/" + repo + ":" + tag;
}

std::string TestRegistry::DockerRef(const std::string& repo, const std::string& tag) const {
  return "docker://" + ImageRef(repo, tag);
}

std::string TestRegistry::user() const {
  return options_.auth == RegistryAuthMode::kAnonymous ? "" : options_.user;
}
std::string TestRegistry::password() const {
  return options_.auth == RegistryAuthMode::kAnonymous ? "" : options_.password;
}
std::string TestRegistry::skopeo_creds() const {
  return options_.auth == RegistryAuthMode::kAnonymous ? ""
                                                       : options_.user + ":" + options_.password;
}

std::string TestRegistry::BlobPath(const std::string& digest) const {
  std::string hex = digest.rfind("sha256:", 0) == 0 ? digest.substr(7) : digest;
  return storage_dir() + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex +
         "/data";
}

Result<std::vector<std::string>> TestRegistry::AccessLogLines(const std::string& needle) const {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(access_log_path()));
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && (needle.empty() || line.find(needle) != std::string::npos)) {
      lines.push_back(std::move(line));
    }
    start = end + 1;
  }
  return lines;
}

uint64_t TestRegistry::LogMark() const { return FileSize(registry_log_path()); }

Result<std::vector<RegistryRequest>> TestRegistry::Requests(uint64_t mark) const {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(registry_log_path()));
  std::vector<RegistryRequest> out;
  std::map<std::string, uint64_t> offsets;  // request id -> first blob read offset
  size_t start = std::min<size_t>(mark, text.size());
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a partial last line: not complete yet
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] != '{') continue;
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    if (doc.HasParseError() || !doc.IsObject()) continue;
    const std::string msg = GetString(doc, "msg");
    const std::string id = GetString(doc, "http.request.id");
    if (msg.rfind("filesystem.Reader(", 0) == 0 && !id.empty()) {
      size_t comma = msg.rfind(", ");
      if (comma != std::string::npos && !offsets.contains(id)) {
        offsets[id] = std::strtoull(msg.c_str() + comma + 2, nullptr, 10);
      }
      continue;
    }
    // Requests the auth layer refuses never reach a handler: the registry logs no "response
    // completed" for them, only this warning (and the 401 in the access log).
    const bool refused = msg.rfind("error authorizing context", 0) == 0;
    if (!refused && msg.rfind("response completed", 0) != 0) continue;
    RegistryRequest r;
    r.id = id;
    r.method = GetString(doc, "http.request.method");
    r.uri = GetString(doc, "http.request.uri");
    r.status = refused ? 401 : static_cast<int>(GetUint(doc, "http.response.status"));
    r.bytes_written = GetUint(doc, "http.response.written");
    r.user_agent = GetString(doc, "http.request.useragent");
    r.auth_user = GetString(doc, "auth.user.name");
    if (auto it = offsets.find(id); it != offsets.end()) r.read_offset = it->second;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace hoist::harness
