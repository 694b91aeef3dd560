#include "tests/harness/token_server.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include <rapidjson/document.h>

#include "base/file_util.h"
#include "tests/harness/simple_http.h"

#ifndef HOIST_HARNESS_DIR
#error "HOIST_HARNESS_DIR must be defined by the build"
#endif

namespace hoist::harness {
namespace {

std::string Python() {
  return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string HarnessSourceDir() { return HOIST_HARNESS_DIR; }

Result<std::unique_ptr<TokenServer>> TokenServer::Start(TokenServerOptions options) {
  if (options.dir.empty()) return Fail(EINVAL, "TokenServer: options.dir is required");
  HOIST_RETURN_IF_ERROR(RequirePrograms({"openssl", Python()}));
  HOIST_RETURN_IF_ERROR(MakeDirs(options.dir));
  std::unique_ptr<TokenServer> server(new TokenServer());
  server->options_ = options;
  const std::string port_file = options.dir + "/port";
  ::unlink(port_file.c_str());
  std::vector<std::string> argv = {Python(),      HarnessSourceDir() + "/token_server.py",
                                   "--dir",       options.dir,
                                   "--port-file", port_file,
                                   "--issuer",    options.issuer,
                                   "--service",   options.service,
                                   "--ttl",       std::to_string(options.ttl_seconds),
                                   "--key-id",    options.key_id};
  if (!options.user.empty()) {
    argv.insert(argv.end(), {"--user", options.user, "--password", options.password});
  }
  ChildProcess::Options child_options;
  child_options.stdout_path = server->log_path();
  child_options.stderr_path = server->log_path();
  HOIST_ASSIGN_OR_RETURN(server->process_, ChildProcess::Start(argv, child_options));
  // Key generation takes a moment; the port file appears once the socket is bound.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto text = ReadFile(port_file)) {
      server->port_ = std::atoi(text->c_str());
      if (server->port_ > 0) return server;
    }
    if (!server->process_.Running()) {
      auto log = ReadFile(server->log_path());
      return Fail(EIO, "token_server.py exited at start: " + (log ? *log : std::string()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail(ETIMEDOUT,
              "token_server.py did not start within 30 s (log: " + server->log_path() + ")");
}

std::string TokenServer::realm() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/token";
}

Status TokenServer::SetTokenTtl(int seconds, int advertised_seconds) {
  HOIST_ASSIGN_OR_RETURN(SimpleHttpResponse r,
                         HttpGet("http://127.0.0.1:" + std::to_string(port_) +
                                 "/control?ttl=" + std::to_string(seconds) +
                                 "&advertise=" + std::to_string(advertised_seconds)));
  if (r.status != 200) return Fail(EIO, "token server /control: HTTP " + std::to_string(r.status));
  return Ok();
}

Result<TokenServerStats> TokenServer::Stats() const {
  HOIST_ASSIGN_OR_RETURN(SimpleHttpResponse r,
                         HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/stats"));
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  if (r.status != 200 || doc.HasParseError() || !doc.IsObject()) {
    return Fail(EIO, "token server /stats: bad reply: " + r.body);
  }
  TokenServerStats stats;
  stats.issued = doc["issued"].GetInt();
  stats.refused = doc["refused"].GetInt();
  stats.ttl = doc["ttl"].GetInt();
  for (const auto& s : doc["last_scopes"].GetArray()) stats.last_scopes.push_back(s.GetString());
  return stats;
}

Result<std::string> TokenServer::FetchToken(const std::vector<std::string>& scopes,
                                            const std::string& user,
                                            const std::string& password) const {
  SimpleHttpRequest request;
  request.url = realm() + "?service=" + UrlEncode(options_.service);
  for (const std::string& scope : scopes) request.url += "&scope=" + UrlEncode(scope);
  request.basic_user = user;
  request.basic_password = password;
  HOIST_ASSIGN_OR_RETURN(SimpleHttpResponse r, HttpFetch(request));
  if (r.status == 401) return Fail(EACCES, "token server refused the credentials of " + user);
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  if (r.status != 200 || doc.HasParseError() || !doc.IsObject() || !doc.HasMember("token")) {
    return Fail(EIO, "token server: HTTP " + std::to_string(r.status) + ": " + r.body);
  }
  return std::string(doc["token"].GetString());
}

}  // namespace hoist::harness
