#include "fetcher/registries_conf.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include <toml++/toml.h>

#include "base/file_util.h"
#include "fetcher/toml_errors.h"

namespace hoist {
namespace {

using toml_errors::Bad;
using toml_errors::Located;

Result<std::string> GetString(const toml::table& t, std::string_view key, std::string_view path) {
  const toml::node* n = t.get(key);
  if (!n) return std::string();
  auto s = n->value<std::string>();
  if (!s) return Fail(Bad(path, *n, std::string(key) + " must be a string"));
  return *s;
}

Result<bool> GetBool(const toml::table& t, std::string_view key, std::string_view path) {
  const toml::node* n = t.get(key);
  if (!n) return false;
  auto b = n->value<bool>();
  if (!b) return Fail(Bad(path, *n, std::string(key) + " must be a boolean"));
  return *b;
}

bool IsWildcard(std::string_view prefix) { return prefix.starts_with("*."); }

std::string_view HostPart(std::string_view name) { return name.substr(0, name.find('/')); }

// Length of `name` matched by `prefix`, or -1.
long MatchLength(std::string_view name, std::string_view prefix) {
  if (IsWildcard(prefix)) {
    std::string_view host = HostPart(name);
    std::string_view suffix = prefix.substr(1);  // ".example.com"
    if (host.size() > suffix.size() && host.ends_with(suffix)) {
      return static_cast<long>(host.size());
    }
    return -1;
  }
  if (!name.starts_with(prefix)) return -1;
  if (name.size() == prefix.size() || name[prefix.size()] == '/') {
    return static_cast<long>(prefix.size());
  }
  return -1;
}

bool Exists(const std::string& path, bool dir) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  return dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

}  // namespace

const RegistriesConfEntry* RegistriesConf::Match(std::string_view name) const {
  const RegistriesConfEntry* best = nullptr;
  long best_len = -1;
  bool best_wild = true;
  for (const RegistriesConfEntry& e : registries) {
    long len = MatchLength(name, e.prefix);
    if (len < 0) continue;
    // Longest match; an exact (non-wildcard) prefix beats a wildcard of the same length.
    bool wild = IsWildcard(e.prefix);
    if (len > best_len || (len == best_len && best_wild && !wild)) {
      best = &e;
      best_len = len;
      best_wild = wild;
    }
  }
  return best;
}

void RegistriesConf::Merge(RegistriesConf other) {
  for (RegistriesConfEntry& e : other.registries) {
    auto it = std::find_if(registries.begin(), registries.end(),
                           [&](const RegistriesConfEntry& r) { return r.prefix == e.prefix; });
    if (it != registries.end()) {
      *it = std::move(e);
    } else {
      registries.push_back(std::move(e));
    }
  }
}

std::string RewriteForLocation(std::string_view name, std::string_view prefix,
                               std::string_view location) {
  long len = MatchLength(name, prefix);
  if (len < 0 || location.empty()) return std::string(name);
  return std::string(location) + std::string(name.substr(static_cast<size_t>(len)));
}

Result<RegistriesConf> ParseRegistriesConf(std::string_view text, std::string_view path) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return Fail(EINVAL, std::string(path) + ":" + std::to_string(e.source().begin.line) + ": " +
                            std::string(e.description()));
  }
  if (root.get("registries")) {
    return Fail(EINVAL, std::string(path) +
                            ": the v1 format ([registries.*]) is not supported; use [[registry]]");
  }
  RegistriesConf out;
  const toml::node* regs = root.get("registry");
  if (!regs) return out;
  const toml::array* arr = regs->as_array();
  if (!arr) return Fail(Bad(path, *regs, "registry must be an array of tables ([[registry]])"));
  for (const toml::node& node : *arr) {
    const toml::table* t = node.as_table();
    if (!t) return Fail(Bad(path, node, "[[registry]] entries must be tables"));
    RegistriesConfEntry e;
    e.source = Located(path, node);
    HOIST_ASSIGN_OR_RETURN(e.prefix, GetString(*t, "prefix", path));
    HOIST_ASSIGN_OR_RETURN(e.location, GetString(*t, "location", path));
    HOIST_ASSIGN_OR_RETURN(e.insecure, GetBool(*t, "insecure", path));
    HOIST_ASSIGN_OR_RETURN(e.blocked, GetBool(*t, "blocked", path));
    HOIST_ASSIGN_OR_RETURN(e.mirror_by_digest_only, GetBool(*t, "mirror-by-digest-only", path));
    while (!e.location.empty() && e.location.back() == '/') e.location.pop_back();
    while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
    if (e.prefix.empty()) e.prefix = e.location;
    if (e.prefix.empty()) return Fail(Bad(path, node, "[[registry]] needs a prefix or a location"));
    if (e.prefix.find("://") != std::string::npos || e.location.find("://") != std::string::npos) {
      return Fail(Bad(path, node, "prefix and location take no scheme (\"host[:port]/path\")"));
    }
    if (IsWildcard(e.prefix)) {
      if (e.prefix.find('/') != std::string::npos || e.prefix.find('*', 1) != std::string::npos) {
        return Fail(Bad(path, node, "wildcard prefix \"" + e.prefix + "\" must be \"*.domain\""));
      }
      if (!e.location.empty()) {
        return Fail(Bad(path, node, "wildcard prefix \"" + e.prefix + "\" takes no location"));
      }
    } else if (e.prefix.find('*') != std::string::npos) {
      return Fail(Bad(path, node, "prefix \"" + e.prefix + "\": '*' only as a leading \"*.\""));
    } else if (e.location.empty()) {
      e.location = e.prefix;
    }
    if (const toml::node* mirrors = t->get("mirror")) {
      const toml::array* marr = mirrors->as_array();
      if (!marr) return Fail(Bad(path, *mirrors, "mirror must be an array of tables"));
      for (const toml::node& mn : *marr) {
        const toml::table* mt = mn.as_table();
        if (!mt) return Fail(Bad(path, mn, "[[registry.mirror]] entries must be tables"));
        RegistriesConfMirror m;
        HOIST_ASSIGN_OR_RETURN(m.location, GetString(*mt, "location", path));
        while (!m.location.empty() && m.location.back() == '/') m.location.pop_back();
        if (m.location.empty()) return Fail(Bad(path, mn, "a mirror needs a location"));
        if (m.location.find("://") != std::string::npos) {
          return Fail(Bad(path, mn, "mirror location takes no scheme (\"host[:port]/path\")"));
        }
        HOIST_ASSIGN_OR_RETURN(m.insecure, GetBool(*mt, "insecure", path));
        HOIST_ASSIGN_OR_RETURN(std::string pull_from, GetString(*mt, "pull-from-mirror", path));
        if (pull_from.empty() || pull_from == "all") {
          m.pull_from = RegistriesConfMirror::PullFrom::kAll;
        } else if (pull_from == "digest-only") {
          m.pull_from = RegistriesConfMirror::PullFrom::kDigestOnly;
        } else if (pull_from == "tag-only") {
          m.pull_from = RegistriesConfMirror::PullFrom::kTagOnly;
        } else {
          return Fail(Bad(path, mn, "pull-from-mirror must be all, digest-only or tag-only"));
        }
        e.mirrors.push_back(std::move(m));
      }
    }
    out.registries.push_back(std::move(e));
  }
  // Same prefix twice in one file: the later one wins, as with drop-ins.
  RegistriesConf merged;
  merged.Merge(std::move(out));
  return merged;
}

Result<RegistriesConf> LoadRegistriesConf(const std::string& path, bool missing_ok) {
  RegistriesConf conf;
  const bool have_file = Exists(path, false);
  const std::string dropin_dir = path + ".d";
  const bool have_dir = Exists(dropin_dir, true);
  if (!have_file && !have_dir) {
    if (missing_ok) return conf;
    return Fail(ENOENT, path + ": registries.conf not found");
  }
  if (have_file) {
    HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    HOIST_ASSIGN_OR_RETURN(conf, ParseRegistriesConf(text, path));
  }
  if (have_dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dropin_dir.c_str());
    if (!d) return Fail(errno, dropin_dir + ": " + std::string(strerror(errno)));
    while (struct dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n.size() > 5 && n.ends_with(".conf")) names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::string file = dropin_dir + "/" + n;
      HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
      HOIST_ASSIGN_OR_RETURN(RegistriesConf part, ParseRegistriesConf(text, file));
      conf.Merge(std::move(part));
    }
  }
  return conf;
}

}  // namespace hoist
