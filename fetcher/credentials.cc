#include "fetcher/credentials.h"

#include <chrono>
#include <cstdlib>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/spawn.h"
#include "rapidjson/document.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace hoist {
namespace {

constexpr std::string_view kDockerHubKey = "https://index.docker.io/v1/";
constexpr int kHelperTimeoutMs = 30000;
// More than any real answer; a longer one is cut there and fails to parse.
constexpr size_t kMaxHelperOutput = 1 << 20;

bool IsDockerHub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// "https://host:port/v1/" -> "host:port".
std::string StripKey(std::string_view key) {
  size_t scheme = key.find("://");
  if (scheme != std::string_view::npos) key = key.substr(scheme + 3);
  return std::string(key.substr(0, key.find('/')));
}

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string JsonString(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return "";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

Result<Credential> EntryToCredential(const rapidjson::Value& entry, const std::string& file,
                                     std::string_view key) {
  Credential cred;
  if (!entry.IsObject()) return cred;
  std::string auth = JsonString(entry, "auth");
  if (!auth.empty()) {
    auto decoded = Base64Decode(auth);
    size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (!decoded || colon == std::string::npos) {
      return Fail(EINVAL, file + ": auths[\"" + std::string(key) +
                              "\"].auth is not base64 of user:password");
    }
    cred.username = decoded->substr(0, colon);
    cred.password = decoded->substr(colon + 1);
  } else {
    cred.username = JsonString(entry, "username");
    cred.password = JsonString(entry, "password");
  }
  cred.identity_token = JsonString(entry, "identitytoken");
  cred.registry_token = JsonString(entry, "registrytoken");
  return cred;
}

// Loads a JSON object file; a missing file gives an empty (null) document.
Result<rapidjson::Document> LoadJson(const std::string& path) {
  rapidjson::Document doc;
  auto data = ReadFile(path);
  if (!data) {
    if (data.error().code() == ENOENT || data.error().code() == ENOTDIR) return doc;
    return Fail(data.error());
  }
  doc.Parse(data->data(), data->size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Fail(EINVAL, path + ": not a JSON object");
  }
  return doc;
}

// Looks `registry` up in an {"auths": {...}} document.
Result<Credential> LookupAuths(const rapidjson::Document& doc, const std::string& file,
                               std::string_view registry) {
  if (!doc.IsObject()) return Credential{};
  auto auths = doc.FindMember("auths");
  if (auths == doc.MemberEnd() || !auths->value.IsObject()) return Credential{};
  std::string exact = DockerConfigKey(registry);
  auto it = auths->value.FindMember(exact.c_str());
  if (it != auths->value.MemberEnd()) return EntryToCredential(it->value, file, exact);
  bool hub = IsDockerHub(registry);
  for (auto m = auths->value.MemberBegin(); m != auths->value.MemberEnd(); ++m) {
    std::string_view key(m->name.GetString(), m->name.GetStringLength());
    std::string host = StripKey(key);
    if (host == registry || (hub && IsDockerHub(host))) {
      return EntryToCredential(m->value, file, key);
    }
  }
  return Credential{};
}

}  // namespace

Result<Credential> StaticCredentialStore::Lookup(std::string_view registry) const {
  auto it = entries_.find(registry);
  if (it == entries_.end() && IsDockerHub(registry)) {
    for (std::string_view alias : {"docker.io", "index.docker.io", "registry-1.docker.io"}) {
      it = entries_.find(alias);
      if (it != entries_.end()) break;
    }
  }
  return it == entries_.end() ? Credential{} : it->second;
}

std::string DockerConfigKey(std::string_view registry) {
  if (IsDockerHub(registry)) return std::string(kDockerHubKey);
  return std::string(registry);
}

std::string DefaultDockerConfigPath() {
  std::string dir = Getenv("DOCKER_CONFIG");
  if (dir.empty()) {
    std::string home = Getenv("HOME");
    if (home.empty()) return "";
    dir = home + "/.docker";
  }
  return dir + "/config.json";
}

DockerCredentialStore::DockerCredentialStore(DockerCredentialOptions options) {
  docker_config_path_ = options.docker_config_dir.empty()
                            ? DefaultDockerConfigPath()
                            : options.docker_config_dir + "/config.json";
  if (options.registry_auth_file.empty()) {
    registry_auth_file_ = Getenv("REGISTRY_AUTH_FILE");
  } else if (options.registry_auth_file != "-") {
    registry_auth_file_ = options.registry_auth_file;
  }
  if (options.xdg_auth_file.empty()) {
    std::string runtime = Getenv("XDG_RUNTIME_DIR");
    if (!runtime.empty()) xdg_auth_file_ = runtime + "/containers/auth.json";
  } else if (options.xdg_auth_file != "-") {
    xdg_auth_file_ = options.xdg_auth_file;
  }
}

Result<Credential> DockerCredentialStore::Lookup(std::string_view registry) const {
  if (!registry_auth_file_.empty()) {
    HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(registry_auth_file_));
    HOIST_ASSIGN_OR_RETURN(Credential c, LookupAuths(doc, registry_auth_file_, registry));
    if (!c.empty()) return c;
  }
  if (!docker_config_path_.empty()) {
    HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(docker_config_path_));
    if (doc.IsObject()) {
      std::string helper;
      auto helpers = doc.FindMember("credHelpers");
      if (helpers != doc.MemberEnd() && helpers->value.IsObject()) {
        std::string key = DockerConfigKey(registry);
        for (const std::string& k : {std::string(registry), key}) {
          auto it = helpers->value.FindMember(k.c_str());
          if (it != helpers->value.MemberEnd() && it->value.IsString()) {
            helper = it->value.GetString();
            break;
          }
        }
      }
      if (!helper.empty()) {
        HOIST_ASSIGN_OR_RETURN(Credential c,
                               RunCredentialHelper(helper, DockerConfigKey(registry)));
        if (!c.empty()) return c;
      }
      std::string store = JsonString(doc, "credsStore");
      if (!store.empty()) {
        HOIST_ASSIGN_OR_RETURN(Credential c, RunCredentialHelper(store, DockerConfigKey(registry)));
        if (!c.empty()) return c;
      }
      HOIST_ASSIGN_OR_RETURN(Credential c, LookupAuths(doc, docker_config_path_, registry));
      if (!c.empty()) return c;
    }
  }
  if (!xdg_auth_file_.empty()) {
    HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(xdg_auth_file_));
    HOIST_ASSIGN_OR_RETURN(Credential c, LookupAuths(doc, xdg_auth_file_, registry));
    if (!c.empty()) return c;
  }
  return Credential{};
}

namespace {

// Runs `docker-credential-HELPER ACTION` with `input` on stdin (its stderr stays ours); the
// output is captured and bounded, the run bounded in time.
Result<RunResult> SpawnHelper(std::string_view helper, const char* action, std::string input) {
  const std::string program = "docker-credential-" + std::string(helper);
  if (helper.empty() || helper.find('/') != std::string_view::npos) {
    return Fail(EINVAL, "bad credential helper name \"" + std::string(helper) + "\"");
  }
  SpawnOptions spawn;
  spawn.search_path = true;
  spawn.stdin_to = Stdio::Pipe();
  spawn.stdout_to = Stdio::Capture();
  auto run = RunAndCapture({program, action}, spawn,
                           {.stdin_data = std::move(input),
                            .max_capture = kMaxHelperOutput,
                            .timeout = std::chrono::milliseconds(kHelperTimeoutMs)});
  if (!run) return Fail(run.error().code(), "running " + run.error().message());
  if (run->timed_out) return Fail(ETIMEDOUT, program + " " + action + ": timed out");
  return run;
}

}  // namespace

Result<Credential> RunCredentialHelper(std::string_view helper, std::string_view server_url) {
  const std::string program = "docker-credential-" + std::string(helper);
  // The helper reads one line on stdin and answers on stdout.
  HOIST_ASSIGN_OR_RETURN(auto run, SpawnHelper(helper, "get", std::string(server_url) + "\n"));
  if (!run.status.ok()) return Credential{};
  const std::string& output = run.stdout_text;

  rapidjson::Document doc;
  doc.Parse(output.data(), output.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return Fail(EINVAL, program + " get: output is not a JSON object");
  }
  Credential cred;
  std::string user = JsonString(doc, "Username");
  std::string secret = JsonString(doc, "Secret");
  if (user == "<token>") {
    cred.identity_token = secret;
  } else {
    cred.username = user;
    cred.password = secret;
  }
  return cred;
}

Result<std::string> CredentialHelperFor(const std::string& config_path, std::string_view registry) {
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(config_path));
  if (!doc.IsObject()) return std::string();
  auto helpers = doc.FindMember("credHelpers");
  if (helpers != doc.MemberEnd() && helpers->value.IsObject()) {
    for (const std::string& k : {std::string(registry), DockerConfigKey(registry)}) {
      auto it = helpers->value.FindMember(k.c_str());
      if (it != helpers->value.MemberEnd() && it->value.IsString() &&
          it->value.GetStringLength() > 0) {
        return std::string(it->value.GetString());
      }
    }
  }
  return JsonString(doc, "credsStore");
}

namespace {

Status RunHelperAction(std::string_view helper, const char* action, std::string input) {
  const std::string program = "docker-credential-" + std::string(helper);
  HOIST_ASSIGN_OR_RETURN(auto ran, SpawnHelper(helper, action, std::move(input)));
  if (!ran.status.ok()) {
    std::string said = ran.stdout_text;
    while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
    if (said.find('\n') != std::string::npos) said = said.substr(0, said.find('\n'));
    return Fail(EIO, program + " " + action + " failed (" + ran.status.Describe() + ")" +
                         (said.empty() ? "" : ": " + said));
  }
  return Ok();
}

}  // namespace

Status StoreWithCredentialHelper(std::string_view helper, std::string_view server_url,
                                 std::string_view username, std::string_view secret) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("ServerURL");
  w.String(server_url.data(), static_cast<rapidjson::SizeType>(server_url.size()));
  w.Key("Username");
  w.String(username.data(), static_cast<rapidjson::SizeType>(username.size()));
  w.Key("Secret");
  w.String(secret.data(), static_cast<rapidjson::SizeType>(secret.size()));
  w.EndObject();
  return RunHelperAction(helper, "store", std::string(buf.GetString(), buf.GetSize()) + "\n");
}

Status EraseWithCredentialHelper(std::string_view helper, std::string_view server_url) {
  return RunHelperAction(helper, "erase", std::string(server_url) + "\n");
}

namespace {

Result<rapidjson::Document> LoadConfigForEdit(const std::string& config_path) {
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(config_path));
  if (!doc.IsObject()) doc.SetObject();
  return doc;
}

Status WriteConfig(const std::string& config_path, const rapidjson::Document& doc) {
  size_t slash = config_path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    HOIST_RETURN_IF_ERROR(MakeDirs(config_path.substr(0, slash), 0700));
  }
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buf);
  writer.SetIndent('\t', 1);
  doc.Accept(writer);
  std::string text(buf.GetString(), buf.GetSize());
  text += "\n";
  return WriteFileAtomic(config_path, text, 0600);
}

}  // namespace

Status SaveDockerAuth(const std::string& config_path, std::string_view registry,
                      std::string_view username, std::string_view password) {
  if (config_path.empty()) return Fail(EINVAL, "no docker config path (set DOCKER_CONFIG or HOME)");
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadConfigForEdit(config_path));
  auto& alloc = doc.GetAllocator();
  auto auths = doc.FindMember("auths");
  if (auths == doc.MemberEnd()) {
    doc.AddMember("auths", rapidjson::Value(rapidjson::kObjectType), alloc);
    auths = doc.FindMember("auths");
  } else if (!auths->value.IsObject()) {
    auths->value.SetObject();
  }
  std::string key = DockerConfigKey(registry);
  HOIST_ASSIGN_OR_RETURN(std::string helper, CredentialHelperFor(config_path, registry));
  rapidjson::Value entry(rapidjson::kObjectType);
  if (helper.empty()) {
    std::string auth = Base64Encode(std::string(username) + ":" + std::string(password));
    entry.AddMember("auth", rapidjson::Value(auth.c_str(), alloc), alloc);
  } else {
    HOIST_RETURN_IF_ERROR(StoreWithCredentialHelper(helper, key, username, password));
  }
  auths->value.RemoveMember(key.c_str());
  auths->value.AddMember(rapidjson::Value(key.c_str(), alloc), entry, alloc);
  return WriteConfig(config_path, doc);
}

namespace {

Status RemoveAuthsEntry(const std::string& config_path, std::string_view registry) {
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, LoadJson(config_path));
  if (!doc.IsObject()) return Ok();
  auto auths = doc.FindMember("auths");
  if (auths == doc.MemberEnd() || !auths->value.IsObject()) return Ok();
  std::string key = DockerConfigKey(registry);
  bool removed = auths->value.RemoveMember(key.c_str());
  // Also drop entries stored under a scheme/path variant of the same host.
  for (auto m = auths->value.MemberBegin(); m != auths->value.MemberEnd();) {
    std::string host = StripKey(std::string_view(m->name.GetString(), m->name.GetStringLength()));
    if (host == registry || (IsDockerHub(registry) && IsDockerHub(host))) {
      m = auths->value.EraseMember(m);
      removed = true;
    } else {
      ++m;
    }
  }
  if (!removed) return Ok();
  return WriteConfig(config_path, doc);
}

}  // namespace

Status RemoveDockerAuth(const std::string& config_path, std::string_view registry) {
  if (config_path.empty()) return Fail(EINVAL, "no docker config path (set DOCKER_CONFIG or HOME)");
  HOIST_ASSIGN_OR_RETURN(std::string helper, CredentialHelperFor(config_path, registry));
  if (!helper.empty()) {
    // The file's empty entry goes first, so a failing helper still leaves no login recorded.
    Status file = RemoveAuthsEntry(config_path, registry);
    HOIST_RETURN_IF_ERROR(EraseWithCredentialHelper(helper, DockerConfigKey(registry)));
    return file;
  }
  return RemoveAuthsEntry(config_path, registry);
}

}  // namespace hoist
