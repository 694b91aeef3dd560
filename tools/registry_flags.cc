#include "tools/registry_flags.h"

#include "base/log.h"

namespace hoist {

void RegistryFlags::Add(CLI::App* app) {
  app->add_option("--insecure-registry", insecure_registries,
                  "HOST[:PORT] that may be reached over plain HTTP (loopback always may)");
  app->add_option("--platform", platform, "OS/ARCH[/VARIANT] to pick from an index");
  app->add_option("--log-level", log_level, "debug, info, warning, error or off");
}

Result<std::unique_ptr<RegistryClient>> RegistryFlags::MakeClient() const {
  LogLevel level;
  if (!ParseLogLevel(log_level, &level)) {
    return Fail(EINVAL, "unknown log level \"" + log_level + "\"");
  }
  SetLogLevel(level);
  RegistryOptions options;
  options.insecure_registries = insecure_registries;
  if (!platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(options.platform, Platform::Parse(platform));
  }
  return RegistryClient::CreateDefault(std::move(options));
}

}  // namespace hoist
