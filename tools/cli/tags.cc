// hoist tags REPO: the repository's tags, one a line (Link pagination followed).
// hoist search [QUERY] [--registry HOST]: repositories in the registry catalog containing QUERY.
#include <cstdio>

#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

struct TagsArgs {
  RegistryFlags registry;
  std::string repo;
};

struct SearchArgs {
  RegistryFlags registry;
  std::string query;
  std::string registry_host = "localhost:5000";
  int limit = 0;
};

int RunTags(const TagsArgs& a) {
  auto ref = ParseRegistryReference(a.repo);
  if (!ref) return ReportError("tags", ref.error().message());
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("tags", client.error().message());
  auto tags = (*client)->ListTags(*ref);
  if (!tags) return ReportError("tags", tags.error().message());
  for (const auto& t : *tags) std::printf("%s\n", t.c_str());
  return 0;
}

int RunSearch(const SearchArgs& a) {
  auto client = a.registry.MakeClient();
  if (!client) return ReportError("search", client.error().message());
  auto repos = (*client)->Catalog(a.registry_host);
  if (!repos) return ReportError("search", repos.error().message());
  int shown = 0;
  for (const auto& r : *repos) {
    if (!a.query.empty() && r.find(a.query) == std::string::npos) continue;
    if (a.limit > 0 && shown >= a.limit) break;
    std::printf("%s/%s\n", a.registry_host.c_str(), r.c_str());
    ++shown;
  }
  return 0;
}

}  // namespace

void RegisterTags(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<TagsArgs>();
  CLI::App* sub = app.add_subcommand("tags", "List a repository's tags");
  args->registry.Add(sub);
  sub->add_option("REPO", args->repo, "Repository (registry/repo)")->required();
  sub->callback([args, run] { *run = [args] { return RunTags(*args); }; });
}

void RegisterSearch(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<SearchArgs>();
  CLI::App* sub = app.add_subcommand("search", "Search a registry's catalog for repositories");
  args->registry.Add(sub);
  sub->add_option("QUERY", args->query, "Substring to match (empty lists all)");
  sub->add_option("--registry", args->registry_host, "Registry HOST[:PORT] to search")
      ->capture_default_str();
  sub->add_option("--limit", args->limit, "Show at most this many results");
  sub->callback([args, run] { *run = [args] { return RunSearch(*args); }; });
}

}  // namespace hoist
