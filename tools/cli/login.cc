// hoist login [-u USER] [--password-stdin] REGISTRY / hoist logout REGISTRY: credentials in
// docker's config.json ($DOCKER_CONFIG or ~/.docker; fetcher/credentials.h writes it atomically,
// mode 0600). login checks the credentials with GET /v2/ (through the token flow if the
// registry uses one) BEFORE anything is written: refused credentials write nothing. The password
// is never printed (not in messages, not echoed when prompted). When config.json names a
// credential helper for the registry (credHelpers, else credsStore), the secret is stored by
// `docker-credential-<helper> store` and logout runs its `erase`, as docker does
// (fetcher/credentials.h SaveDockerAuth / RemoveDockerAuth).
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "base/log.h"
#include "fetcher/credentials.h"
#include "fetcher/curl_transport.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"

namespace hoist {
namespace {

struct LoginArgs {
  RegistryFlags registry;
  std::string server;
  std::string username;
  std::string password;
  bool password_stdin = false;
};

// "https://host:5000/v2/" -> "host:5000"; docker.io aliases -> "docker.io".
Result<std::string> NormalizeRegistry(std::string s) {
  for (std::string_view scheme : {"https://", "http://"}) {
    if (s.starts_with(scheme)) s = s.substr(scheme.size());
  }
  if (size_t slash = s.find('/'); slash != std::string::npos) s = s.substr(0, slash);
  if (s.empty()) return Fail(EINVAL, "no registry given");
  if (s == "index.docker.io" || s == "registry-1.docker.io") s = "docker.io";
  // Validate the host part through the reference parser.
  HOIST_ASSIGN_OR_RETURN(Reference r, Reference::Parse(s + "/x"));
  if (r.registry != s) return Fail(EINVAL, "\"" + s + "\" is not a registry host[:port]");
  return s;
}

Result<std::string> ReadLine(bool echo, const std::string& prompt) {
  const bool tty = ::isatty(0);
  if (!tty) return Fail(EINVAL, "no terminal to ask for it");
  std::fprintf(stderr, "%s", prompt.c_str());
  std::fflush(stderr);
  termios old{};
  bool restored = true;
  if (!echo && ::tcgetattr(0, &old) == 0) {
    termios t = old;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(0, TCSANOW, &t);
    restored = false;
  }
  std::string line;
  std::getline(std::cin, line);
  if (!restored) {
    ::tcsetattr(0, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  return line;
}

Status Login(const LoginArgs& a, std::string* server_out) {
  HOIST_ASSIGN_OR_RETURN(std::string server, NormalizeRegistry(a.server));
  *server_out = server;
  std::string user = a.username;
  if (user.empty()) {
    auto u = ReadLine(true, "Username: ");
    if (!u) return Fail(EINVAL, "a username is needed (-u USER)");
    user = *u;
  }
  if (user.empty()) return Fail(EINVAL, "a username is needed (-u USER)");
  std::string password = a.password;
  if (a.password_stdin) {
    if (!a.password.empty()) return Fail(EINVAL, "--password and --password-stdin are exclusive");
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) all.pop_back();
    password = std::move(all);
  } else if (password.empty()) {
    auto p = ReadLine(false, "Password: ");
    if (!p) return Fail(EINVAL, "a password is needed (--password-stdin)");
    password = *p;
  }
  if (password.empty()) return Fail(EINVAL, "empty password");

  // The check, with exactly these credentials (not whatever config.json holds).
  LogLevel level;
  if (!ParseLogLevel(a.registry.log_level, &level)) {
    return Fail(EINVAL, "unknown log level \"" + a.registry.log_level + "\"");
  }
  SetLogLevel(level);
  RegistryOptions options;
  options.insecure_registries = a.registry.insecure_registries;
  options.retry.total_budget = std::chrono::seconds(30);
  options.retry.max_unreachable_attempts = 2;
  CurlTransportOptions topts;
  topts.user_agent = options.user_agent;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<HttpTransport> transport, NewCurlTransport(topts));
  Credential cred;
  cred.username = user;
  cred.password = password;
  std::map<std::string, Credential, std::less<>> entries;
  entries.emplace(server, cred);
  RegistryClient client(std::shared_ptr<HttpTransport>(std::move(transport)),
                        std::make_shared<StaticCredentialStore>(std::move(entries)), options);
  if (Status st = client.CheckAuth(server); !st) {
    if (st.error().code() == EACCES) {
      return Fail(EACCES, "login to " + server + " refused: wrong username or password");
    }
    return Fail(st.error().Context("login to " + server));
  }
  const std::string path = DefaultDockerConfigPath();
  if (path.empty()) return Fail(ENOENT, "neither $DOCKER_CONFIG nor $HOME is set");
  return SaveDockerAuth(path, server, user, password);
}

int RunLogin(const LoginArgs& a) {
  std::string server;
  Status st = Login(a, &server);
  if (!st) return ReportError("login", st.error().message());
  std::printf("Login Succeeded (%s)\n", server.c_str());
  return 0;
}

struct LogoutArgs {
  std::string server;
};

int RunLogout(const LogoutArgs& a) {
  auto server = NormalizeRegistry(a.server);
  if (!server) return ReportError("logout", server.error().message());
  const std::string path = DefaultDockerConfigPath();
  if (path.empty()) return ReportError("logout", "neither $DOCKER_CONFIG nor $HOME is set");
  if (Status st = RemoveDockerAuth(path, *server); !st) {
    return ReportError("logout", st.error().message());
  }
  std::printf("Removed login credentials for %s\n", server->c_str());
  return 0;
}

}  // namespace

void RegisterLogin(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<LoginArgs>();
  CLI::App* sub = app.add_subcommand("login", "Check and save registry credentials");
  sub->add_option("--insecure-registry", args->registry.insecure_registries,
                  "HOST[:PORT] that may be reached over plain HTTP (loopback always may)");
  sub->add_option("--log-level", args->registry.log_level, "debug, info, warning, error or off");
  sub->add_option("-u,--username", args->username, "User name");
  sub->add_option("-p,--password", args->password,
                  "Password (visible to other users in the process list; prefer --password-stdin)");
  sub->add_flag("--password-stdin", args->password_stdin, "Read the password from stdin");
  sub->add_option("REGISTRY", args->server, "Registry host[:port]")->required();
  sub->callback([args, run] { *run = [args] { return RunLogin(*args); }; });

  auto out = std::make_shared<LogoutArgs>();
  CLI::App* lo = app.add_subcommand("logout", "Remove saved registry credentials");
  lo->add_option("REGISTRY", out->server, "Registry host[:port]")->required();
  lo->callback([out, run] { *run = [out] { return RunLogout(*out); }; });
}

}  // namespace hoist
