#include "tools/hoistfs/layers_mode.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "base/sd_notify.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "fusefs/layer_store.h"
#include "fusefs/local_image.h"

namespace hoist {
namespace {

void Tell(int fd, const std::string& line) {
  if (fd >= 0) {
    (void)WriteAll(fd, line, "the readiness pipe");
  } else if (line != "ready\n") {
    std::fputs(line.c_str(), stderr);
  }
}

// One store with every layer of the image.
Result<std::vector<std::unique_ptr<LayerStore>>> OneStore(const MountOptions& options) {
  std::vector<std::unique_ptr<LayerStore>> stores;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LayerStore> store, LayerStore::Start(options));
  HOIST_ASSIGN_OR_RETURN(std::vector<std::string> dirs, store->AddImage(options.image));
  HOIST_LOG(kInfo) << options.image << ": " << dirs.size() << " layers under "
                   << store->mountpoint();
  stores.push_back(std::move(store));
  return stores;
}

// A store per layer, each mounted on MNT/<hex>.
Result<std::vector<std::unique_ptr<LayerStore>>> StorePerLayer(const MountOptions& options) {
  std::vector<std::unique_ptr<LayerStore>> stores;
  RegistryOptions ro;
  ro.insecure_registries = options.insecure_registries;
  HOIST_RETURN_IF_ERROR(UseMirrors(&ro, options.hosts_dir, options.registries_conf,
                                   std::chrono::milliseconds(options.mirror_connect_timeout_ms)));
  if (!options.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(ro.platform, Platform::Parse(options.platform));
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, RegistryClient::CreateDefault(ro));
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(options.image));
  HOIST_ASSIGN_OR_RETURN(MountImage image, ResolveMountImage(*client, ref, options));
  for (const Descriptor& d : image.image.manifest.layers) {
    MountOptions one = options;
    one.mountpoint = options.mountpoint + "/" + d.digest.hex();
    if (::mkdir(one.mountpoint.c_str(), 0755) != 0 && errno != EEXIST)
      return Fail(ErrnoError("mkdir " + one.mountpoint));
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LayerStore> store, LayerStore::Start(one));
    HOIST_RETURN_IF_ERROR(
        store->AddLayer(options.image, d.digest, image.image.manifest_bytes.digest));
    stores.push_back(std::move(store));
  }
  return stores;
}

}  // namespace

int RunLayerStoreDaemon(const MountOptions& options, bool mount_per_layer, int ready_fd) {
  // The stores' threads inherit a mask blocking the stop signals; this thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto stores = mount_per_layer ? StorePerLayer(options) : OneStore(options);
  if (!stores) {
    Tell(ready_fd, "hoistfs: " + stores.error().message() + "\n");
    return 1;
  }
  Tell(ready_fd, "ready\n");
  if (ready_fd >= 0) ::close(ready_fd);
  if (options.foreground) {
    if (auto s = SdNotify("READY=1"); !s)
      std::fprintf(stderr, "hoistfs: %s\n", s.error().message().c_str());
  }
  if (::chdir("/") != 0) {
    // Not fatal: only keeps the daemon from pinning a directory.
  }
  // Until a stop signal, or until any store's mount is gone (unmounted from outside). The
  // timeout only bounds how late an outside unmount is noticed.
  while (true) {
    const timespec tick{.tv_sec = 1, .tv_nsec = 0};
    const int sig = ::sigtimedwait(&stop, nullptr, &tick);
    if (sig > 0) {
      HOIST_LOG(kInfo) << "signal " << sig << ": unmounting the layer store";
      break;
    }
    bool all_serving = true;
    for (const auto& s : *stores) all_serving = all_serving && s->Serving();
    if (!all_serving) break;
  }
  stores->clear();
  return 0;
}

}  // namespace hoist
