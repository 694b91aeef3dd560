#include "fetcher/hosts_toml.h"

#include <sys/stat.h>

#include <algorithm>
#include <sstream>

#include <toml++/toml.h>

#include "base/file_util.h"
#include "fetcher/reference.h"
#include "fetcher/toml_errors.h"
#include "fetcher/url.h"

namespace hoist {
namespace {

using toml_errors::Bad;
using toml_errors::Located;

std::string Absolute(std::string_view base_dir, const std::string& p) {
  if (p.empty() || p.front() == '/' || base_dir.empty()) return p;
  return std::string(base_dir) + "/" + p;
}

// "https://h:p/path" (or "h:p/path") -> scheme, host[:port], path.
Status ParseHostUrl(std::string_view text, bool override_path, HostsTomlHost* out,
                    std::string_view path, const toml::node& node) {
  std::string url(text);
  if (url.find("://") == std::string::npos) {
    std::string hostport = url.substr(0, url.find('/'));
    url = (IsLoopbackRegistry(hostport) ? "http://" : "https://") + url;
  }
  auto parsed = Url::Parse(url);
  if (!parsed) return Fail(Bad(path, node, "bad host URL \"" + std::string(text) + "\""));
  if (parsed->path_and_query.find('?') != std::string::npos) {
    return Fail(Bad(path, node, "host URL \"" + std::string(text) + "\" has a query"));
  }
  out->scheme = parsed->scheme;
  const int default_port = parsed->scheme == "https" ? 443 : 80;
  out->host = parsed->host;
  if (parsed->port != default_port) {
    out->host.push_back(':');
    out->host.append(std::to_string(parsed->port));
  }
  std::string p = parsed->path_and_query;
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (!override_path && !p.ends_with("/v2")) p += "/v2";
  out->api_root = p;
  return Ok();
}

Result<std::vector<std::string>> Strings(std::string_view path, const toml::node& node,
                                         std::string_view field) {
  std::vector<std::string> out;
  if (auto s = node.value<std::string>()) {
    out.push_back(*s);
    return out;
  }
  const toml::array* arr = node.as_array();
  if (!arr) return Fail(Bad(path, node, std::string(field) + " must be a string or an array"));
  for (const toml::node& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) return Fail(Bad(path, e, std::string(field) + " entries must be strings"));
    out.push_back(*s);
  }
  return out;
}

// The settings a host table (or the top level, for the server) may carry.
Status ParseSettings(const toml::table& t, std::string_view path, std::string_view base_dir,
                     HostsTomlHost* h) {
  if (const toml::node* caps = t.get("capabilities")) {
    HOIST_ASSIGN_OR_RETURN(auto names, Strings(path, *caps, "capabilities"));
    h->capabilities = 0;
    for (const std::string& n : names) {
      if (n == "pull") {
        h->capabilities |= kHostPull;
      } else if (n == "resolve") {
        h->capabilities |= kHostResolve;
      } else if (n == "push") {
        h->capabilities |= kHostPush;
      } else {
        return Fail(Bad(path, *caps, "unknown capability \"" + n + "\""));
      }
    }
  }
  if (const toml::node* sv = t.get("skip_verify")) {
    auto b = sv->value<bool>();
    if (!b) return Fail(Bad(path, *sv, "skip_verify must be a boolean"));
    h->skip_verify = *b;
  }
  if (const toml::node* ca = t.get("ca")) {
    HOIST_ASSIGN_OR_RETURN(auto files, Strings(path, *ca, "ca"));
    for (const std::string& f : files) h->ca_files.push_back(Absolute(base_dir, f));
  }
  if (const toml::node* client = t.get("client")) {
    if (auto s = client->value<std::string>()) {
      h->client_certs.emplace_back(Absolute(base_dir, *s), "");
    } else if (const toml::array* arr = client->as_array()) {
      for (const toml::node& e : *arr) {
        if (auto s = e.value<std::string>()) {
          h->client_certs.emplace_back(Absolute(base_dir, *s), "");
        } else if (const toml::array* pair = e.as_array();
                   pair && pair->size() >= 1 && pair->size() <= 2) {
          auto cert = (*pair)[0].value<std::string>();
          auto key = pair->size() == 2 ? (*pair)[1].value<std::string>() : std::string();
          if (!cert || !key) return Fail(Bad(path, e, "client pairs must be strings"));
          h->client_certs.emplace_back(Absolute(base_dir, *cert),
                                       key->empty() ? "" : Absolute(base_dir, *key));
        } else {
          return Fail(Bad(path, e, "client entries must be a path or [cert, key]"));
        }
      }
    } else {
      return Fail(Bad(path, *client, "client must be a string or an array"));
    }
  }
  if (const toml::node* header = t.get("header")) {
    const toml::table* ht = header->as_table();
    if (!ht) return Fail(Bad(path, *header, "header must be a table"));
    for (const auto& [name, value] : *ht) {
      HOIST_ASSIGN_OR_RETURN(auto values, Strings(path, value, "header values"));
      for (std::string& v : values) {
        if (v.find_first_of("\r\n") != std::string::npos) {
          return Fail(Bad(path, value, "header value has a line break"));
        }
        h->headers.emplace_back(std::string(name.str()), std::move(v));
      }
    }
  }
  return Ok();
}

Result<bool> OverridePath(const toml::table& t, std::string_view path) {
  const toml::node* op = t.get("override_path");
  if (!op) return false;
  auto b = op->value<bool>();
  if (!b) return Fail(Bad(path, *op, "override_path must be a boolean"));
  return *b;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Result<HostsToml> ParseHostsToml(std::string_view text, std::string_view path,
                                 std::string_view base_dir) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    std::string desc(e.description());
    return Fail(EINVAL,
                std::string(path) + ":" + std::to_string(e.source().begin.line) + ": " + desc);
  }
  HostsToml out;
  out.path = std::string(path);
  if (const toml::node* server = root.get("server")) {
    auto s = server->value<std::string>();
    if (!s) return Fail(Bad(path, *server, "server must be a string"));
    HostsTomlHost h;
    HOIST_ASSIGN_OR_RETURN(bool override_path, OverridePath(root, path));
    HOIST_RETURN_IF_ERROR(ParseHostUrl(*s, override_path, &h, path, *server));
    HOIST_RETURN_IF_ERROR(ParseSettings(root, path, base_dir, &h));
    out.server = std::move(h);
  } else {
    // Settings for the registry itself, without a server line.
    HostsTomlHost h;
    HOIST_RETURN_IF_ERROR(ParseSettings(root, path, base_dir, &h));
    if (h.capabilities != kHostAll || h.skip_verify || !h.ca_files.empty() ||
        !h.client_certs.empty() || !h.headers.empty()) {
      out.server = std::move(h);  // scheme/host left empty: filled with the registry's own
    }
  }
  if (const toml::node* hosts = root.get("host")) {
    const toml::table* ht = hosts->as_table();
    if (!ht) return Fail(Bad(path, *hosts, "host must be a table of tables"));
    // toml++ keeps keys sorted; the file order is the order of their source positions.
    std::vector<std::pair<const toml::key*, const toml::table*>> entries;
    for (const auto& [key, value] : *ht) {
      const toml::table* t = value.as_table();
      if (!t)
        return Fail(Bad(path, value, "host.\"" + std::string(key.str()) + "\" must be a table"));
      entries.emplace_back(&key, t);
    }
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      const auto& sa = a.first->source().begin;
      const auto& sb = b.first->source().begin;
      return sa.line != sb.line ? sa.line < sb.line : sa.column < sb.column;
    });
    for (const auto& [key, t] : entries) {
      HostsTomlHost h;
      HOIST_ASSIGN_OR_RETURN(bool override_path, OverridePath(*t, path));
      HOIST_RETURN_IF_ERROR(ParseHostUrl(key->str(), override_path, &h, path, *t));
      HOIST_RETURN_IF_ERROR(ParseSettings(*t, path, base_dir, &h));
      out.hosts.push_back(std::move(h));
    }
  }
  return out;
}

Result<std::optional<HostsToml>> LoadHostsToml(std::string_view dir, std::string_view registry,
                                               bool use_default, bool* exact) {
  *exact = false;
  std::string base(dir);
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::vector<std::pair<std::string, bool>> candidates;
  if (!registry.empty() && registry.find('/') == std::string_view::npos && registry != "." &&
      registry != "..") {
    candidates.emplace_back(base + "/" + std::string(registry), true);
  }
  if (use_default) candidates.emplace_back(base + "/_default", false);
  for (const auto& [d, is_exact] : candidates) {
    std::string file = d + "/hosts.toml";
    if (!IsFile(file)) continue;
    HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    HOIST_ASSIGN_OR_RETURN(HostsToml parsed, ParseHostsToml(text, file, d));
    *exact = is_exact;
    return std::optional<HostsToml>(std::move(parsed));
  }
  return std::optional<HostsToml>();
}

}  // namespace hoist
