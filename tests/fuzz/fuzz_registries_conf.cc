// libFuzzer target: ParseRegistriesConf (containers' registries.conf, fetcher/registries_conf.h)
// and what MirrorResolver makes of it. A file that parses has a prefix per entry; every name
// resolves to at least one host (or is refused as blocked, EACCES), each URL an http(s) one.
#include <cstddef>
#include <cstdint>

#include "fetcher/mirror_resolver.h"
#include "fetcher/registries_conf.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  auto parsed = hoist::ParseRegistriesConf(hoist::fuzz::AsView(data, size), "registries.conf");
  if (!parsed) {
    FUZZ_CHECK(parsed.error().code() == EINVAL);
    return 0;
  }
  for (const auto& e : parsed->registries) FUZZ_CHECK(!e.prefix.empty());
  auto resolver = hoist::MirrorResolver::FromParsed({}, *parsed);
  const char* names[][2] = {{"docker.io", "library/alpine"},
                            {"example.com", "a/b"},
                            {"localhost:5000", "x"},
                            {"a.b.example.com", "team/app"}};
  for (const auto& [registry, repo] : names) {
    for (auto access : {hoist::RegistryAccess::kPull, hoist::RegistryAccess::kResolve}) {
      auto eps = resolver->Endpoints(registry, repo, access, std::string("https://") + registry,
                                     [](std::string_view) { return false; });
      if (!eps) {
        FUZZ_CHECK(eps.error().code() == EACCES);
        continue;
      }
      FUZZ_CHECK(!eps->empty());
      for (const auto& ep : *eps) {
        std::string url = ep.Url("blobs/sha256:00");
        FUZZ_CHECK(url.starts_with("http://") || url.starts_with("https://"));
      }
    }
  }
  return 0;
}
