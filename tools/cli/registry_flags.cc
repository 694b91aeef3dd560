#include "tools/cli/registry_flags.h"

#include "base/log.h"
#include "fetcher/mirror_resolver.h"

namespace hoist {

void RegistryFlags::Add(CLI::App* app) {
  AddInsecureRegistry(app);
  app->add_option("--platform", platform, "OS/ARCH[/VARIANT] to pick from an index");
  app->add_option("--log-level", log_level, "debug, info, warning, error or off");
}

void RegistryFlags::AddInsecureRegistry(CLI::App* app) {
  // One value per occurrence (repeat the flag for more): a greedy list would swallow the
  // positional arguments after it.
  app->add_option("--insecure-registry", insecure_registries,
                  "HOST[:PORT] that may be reached over plain HTTP (loopback always may; "
                  "repeatable)")
      ->allow_extra_args(false);
  app->add_option("--hosts-dir", hosts_dir,
                  "containerd hosts.toml directory for mirrors (default /etc/containerd/certs.d; "
                  "\"none\" = not read)");
  app->add_option("--registries-conf", registries_conf,
                  "containers registries.conf for mirrors (default $CONTAINERS_REGISTRIES_CONF "
                  "or /etc/containers/registries.conf; \"none\" = not read)");
  app->add_option("--mirror-connect-timeout", mirror_connect_timeout_ms,
                  "milliseconds to wait for a mirror's connection before the next host "
                  "(default 3000)")
      ->check(CLI::NonNegativeNumber);
}

Result<RegistryOptions> RegistryFlags::Options() const {
  RegistryOptions options;
  options.insecure_registries = insecure_registries;
  HOIST_RETURN_IF_ERROR(UseMirrors(&options, hosts_dir, registries_conf,
                                   std::chrono::milliseconds(mirror_connect_timeout_ms)));
  // A registry that refuses connections or whose name does not resolve: one quick retry.
  options.retry.max_unreachable_attempts = 2;
  if (!platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(options.platform, Platform::Parse(platform));
  }
  return options;
}

Result<std::unique_ptr<RegistryClient>> RegistryFlags::MakeClient() const {
  LogLevel level;
  if (!ParseLogLevel(log_level, &level)) {
    return Fail(EINVAL, "unknown log level \"" + log_level + "\"");
  }
  SetLogLevel(level);
  HOIST_ASSIGN_OR_RETURN(RegistryOptions options, Options());
  return RegistryClient::CreateDefault(std::move(options));
}

}  // namespace hoist
