#include "fetcher/mirror_resolver.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/file_util.h"
#include "fetcher/reference.h"
#include "fetcher/url.h"

namespace hoist {
namespace {

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// containerd's rule: a host other than the reference's own gets ?ns= (Docker Hub's API host
// counts as its own).
bool NeedsNamespace(std::string_view host, std::string_view registry) {
  if (host == registry) return false;
  return !(registry == kDockerHubRegistry && host == kDockerHubApiHost);
}

// Reads the CA files into ca_pem and checks the client files can be read: a bad path is a
// configuration error at load, not a failure of every request.
Status ReadTlsFiles(HostsTomlHost* h) {
  h->ca_pem.clear();
  for (const std::string& ca : h->ca_files) {
    HOIST_ASSIGN_OR_RETURN(std::string pem, ReadFile(ca));
    h->ca_pem += pem;
    if (!h->ca_pem.empty() && h->ca_pem.back() != '\n') h->ca_pem += '\n';
  }
  for (const auto& [cert, key] : h->client_certs) {
    HOIST_RETURN_IF_ERROR(ReadFile(cert));
    if (!key.empty()) HOIST_RETURN_IF_ERROR(ReadFile(key));
  }
  return Ok();
}

HttpTlsOptions TlsFor(const HostsTomlHost& h) {
  HttpTlsOptions tls;
  tls.skip_verify = h.skip_verify;
  tls.ca_pem = h.ca_pem;
  if (!h.client_certs.empty()) {
    // curl takes one client certificate per connection: the first pair.
    tls.client_cert = h.client_certs.front().first;
    tls.client_key = h.client_certs.front().second;
  }
  return tls;
}

// "host[:port]/path/repo" -> (host, path/repo).
std::pair<std::string, std::string> SplitName(std::string_view name) {
  size_t slash = name.find('/');
  if (slash == std::string_view::npos) return {std::string(name), ""};
  return {std::string(name.substr(0, slash)), std::string(name.substr(slash + 1))};
}

}  // namespace

std::string MirrorEndpoint::Url(std::string_view suffix) const {
  std::string url = origin + api_root + "/" + repository + "/" + std::string(suffix);
  if (!ns.empty()) url = AppendQuery(url, "ns", ns);
  return url;
}

std::string MirrorEndpoint::Host() const {
  size_t p = origin.find("://");
  return p == std::string::npos ? origin : origin.substr(p + 3);
}

MirrorConfig MirrorConfig::Defaults() {
  MirrorConfig c;
  if (const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF"); env && *env) {
    c.registries_conf = env;
    c.registries_conf_required = true;
  }
  return c;
}

Result<std::shared_ptr<const MirrorResolver>> MirrorResolver::Load(const MirrorConfig& config) {
  std::map<std::string, HostsToml> hosts;
  if (!config.hosts_dir.empty()) {
    if (!IsDir(config.hosts_dir)) {
      if (config.hosts_dir_required) {
        return Fail(ENOENT, config.hosts_dir + ": hosts directory not found");
      }
    } else {
      DIR* d = ::opendir(config.hosts_dir.c_str());
      if (!d) return Fail(errno, config.hosts_dir + ": " + std::string(strerror(errno)));
      std::vector<std::string> names;
      while (struct dirent* ent = ::readdir(d)) {
        std::string n = ent->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      ::closedir(d);
      for (const std::string& n : names) {
        bool exact = false;
        auto file = LoadHostsToml(config.hosts_dir, n, /*use_default=*/false, &exact);
        if (!file) return Fail(file.error());
        if (*file) {
          // Validate the files it names now: a bad ca/client is a configuration error.
          for (HostsTomlHost& h : (*file)->hosts) HOIST_RETURN_IF_ERROR(ReadTlsFiles(&h));
          if ((*file)->server) HOIST_RETURN_IF_ERROR(ReadTlsFiles(&*(*file)->server));
          hosts.emplace(n, std::move(**file));
        }
      }
    }
  }
  RegistriesConf conf;
  if (!config.registries_conf.empty()) {
    HOIST_ASSIGN_OR_RETURN(
        conf, LoadRegistriesConf(config.registries_conf, !config.registries_conf_required));
  }
  return FromParsed(std::move(hosts), std::move(conf));
}

std::shared_ptr<const MirrorResolver> MirrorResolver::FromParsed(
    std::map<std::string, HostsToml> hosts, RegistriesConf conf) {
  auto r = std::make_shared<MirrorResolver>();
  r->hosts_ = std::move(hosts);
  r->conf_ = std::move(conf);
  return r;
}

Status UseMirrors(RegistryOptions* options, std::string_view hosts_dir,
                  std::string_view registries_conf, std::chrono::milliseconds connect_timeout) {
  MirrorConfig config = MirrorConfig::Defaults();
  if (hosts_dir == "none") {
    config.hosts_dir.clear();
  } else if (!hosts_dir.empty()) {
    config.hosts_dir = std::string(hosts_dir);
    config.hosts_dir_required = true;
  }
  if (registries_conf == "none") {
    config.registries_conf.clear();
  } else if (!registries_conf.empty()) {
    config.registries_conf = std::string(registries_conf);
    config.registries_conf_required = true;
  }
  HOIST_ASSIGN_OR_RETURN(options->mirrors, MirrorResolver::Load(config));
  if (connect_timeout.count() > 0) options->mirror_connect_timeout = connect_timeout;
  return Ok();
}

Result<std::vector<MirrorEndpoint>> MirrorResolver::Endpoints(
    std::string_view registry, std::string_view repository, RegistryAccess access,
    std::string_view default_origin,
    const std::function<bool(std::string_view host)>& plain_http) const {
  std::vector<MirrorEndpoint> out;
  const std::string reg(registry);
  const std::string name = reg + "/" + std::string(repository);

  auto own = [&] {
    MirrorEndpoint e;
    e.origin = std::string(default_origin);
    e.api_root = "/v2";
    e.repository = std::string(repository);
    e.credentials_host = reg;
    return e;
  };

  const HostsToml* file = nullptr;
  if (auto it = hosts_.find(reg); it != hosts_.end()) file = &it->second;
  const RegistriesConfEntry* entry = file ? nullptr : conf_.Match(name);
  if (!file && !entry) {
    if (auto it = hosts_.find("_default"); it != hosts_.end()) file = &it->second;
  }

  if (file) {
    unsigned need = kHostPull;
    const char* verb = "pull";
    if (access == RegistryAccess::kResolve || access == RegistryAccess::kListTags) {
      need = kHostResolve;
      verb = "resolve tags";
    } else if (access == RegistryAccess::kPush) {
      need = kHostPush;
      verb = "push";
    }
    auto add = [&](const HostsTomlHost& h, bool mirror) {
      if ((h.capabilities & need) == 0) return;
      MirrorEndpoint e = own();
      if (!h.host.empty()) {
        e.origin = h.scheme + "://" + (h.host == registry ? RegistryApiHost(h.host) : h.host);
        e.api_root = h.api_root;
        e.credentials_host = h.host;
        if (NeedsNamespace(h.host, registry)) e.ns = reg;
      }
      e.mirror = mirror;
      e.tls = TlsFor(h);
      e.headers = h.headers;
      out.push_back(std::move(e));
    };
    for (const HostsTomlHost& h : file->hosts) add(h, true);
    if (file->server) {
      add(*file->server, false);
    } else {
      out.push_back(own());
    }
    if (out.empty()) return Fail(ENOENT, name + ": no host in " + file->path + " may " + verb);
    // containerd pushes to the first push host alone (no fallback for a write).
    if (access == RegistryAccess::kPush) out.resize(1);
    return out;
  }

  if (entry) {
    if (entry->blocked) {
      return Fail(EACCES, name + ": registry blocked by " + entry->source);
    }
    auto add = [&](std::string_view location, bool insecure, bool mirror) {
      auto [host, repo] = SplitName(RewriteForLocation(name, entry->prefix, location));
      MirrorEndpoint e;
      e.api_root = "/v2";
      e.repository = repo;
      e.credentials_host = host;
      e.mirror = mirror;
      if (!mirror && host == registry) {
        e.origin = std::string(default_origin);
        if (insecure && !plain_http(host) && e.origin.starts_with("https://")) {
          e.tls.skip_verify = true;
          out.push_back(e);
          e.origin = "http://" + RegistryApiHost(host);
          e.tls = {};
        }
        out.push_back(std::move(e));
        return;
      }
      const std::string api_host = RegistryApiHost(host);
      if (plain_http(host)) {
        e.origin = "http://" + api_host;
      } else if (insecure) {
        e.origin = "https://" + api_host;
        e.tls.skip_verify = true;
        out.push_back(e);
        e.origin = "http://" + api_host;
        e.tls = {};
      } else {
        e.origin = "https://" + api_host;
      }
      out.push_back(std::move(e));
    };
    if (access == RegistryAccess::kPush || access == RegistryAccess::kListTags) {
      // As containers/image writes and lists tags: the registry the reference names, without
      // mirrors or `location` rewriting; the entry's `insecure` applies.
      MirrorEndpoint e = own();
      if (entry->insecure && !plain_http(reg) && e.origin.starts_with("https://")) {
        e.tls.skip_verify = true;
        out.push_back(e);
        e.origin = "http://" + RegistryApiHost(reg);
        e.tls = {};
      }
      out.push_back(std::move(e));
      return out;
    }
    const bool by_tag = access == RegistryAccess::kResolve;
    if (!(by_tag && entry->mirror_by_digest_only)) {
      for (const RegistriesConfMirror& m : entry->mirrors) {
        if (by_tag && m.pull_from == RegistriesConfMirror::PullFrom::kDigestOnly) continue;
        if (!by_tag && m.pull_from == RegistriesConfMirror::PullFrom::kTagOnly) continue;
        add(m.location, m.insecure, true);
      }
    }
    add(entry->location.empty() ? std::string_view(reg) : std::string_view(entry->location),
        entry->insecure, false);
    return out;
  }

  out.push_back(own());
  return out;
}

}  // namespace hoist
