// Flags every registry-facing verb shares (--insecure-registry, --platform, --log-level) and the
// one place that turns them into a RegistryClient.
//
// Usage: RegistryFlags flags; flags.Add(sub); ... later, in the runner: flags.MakeClient().
// The object must outlive the parse (CLI11 binds to its members).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "fetcher/registry.h"

namespace hoist {

struct RegistryFlags {
  std::vector<std::string> insecure_registries;
  std::string platform;  // "os/arch[/variant]"; empty = the host's
  std::string log_level = "warning";
  // Mirrors (fetcher/mirror_resolver.h UseMirrors): "" = the defaults.
  std::string hosts_dir;
  std::string registries_conf;
  int mirror_connect_timeout_ms = 0;  // 0 = RegistryOptions' default

  void Add(CLI::App* app);
  // Only --insecure-registry (for verbs with a --platform or --log-level of their own).
  void AddInsecureRegistry(CLI::App* app);
  // The client options the flags give. EINVAL for a bad --platform.
  [[nodiscard]] Result<RegistryOptions> Options() const;
  // Applies --log-level and builds the client. EINVAL for a bad --platform or --log-level.
  [[nodiscard]] Result<std::unique_ptr<RegistryClient>> MakeClient() const;
};

}  // namespace hoist
