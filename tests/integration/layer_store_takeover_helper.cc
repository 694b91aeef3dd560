// layer-store-takeover-helper: one process owning a LayerStore, for layer_store_takeover_test.
//
//   layer-store-takeover-helper MOUNTPOINT CACHE IMAGE_REF LAYER_DIGEST...
//
// Without LISTEN_FDS: mounts a new store at MOUNTPOINT (with NOTIFY_SOCKET set it keeps its
// connection in that fd store). With the store's three fds handed over (LISTEN_FDS, names
// layers-fuse, layers-state, layers-slots): takes that connection over. Either way it adds each
// LAYER_DIGEST of IMAGE_REF, in the order given, then serves (Serve) and sends READY=1 to
// NOTIFY_SOCKET. With HOIST_TEST_RESTORE_DELAY_MS=N a takeover waits N ms before adding the
// layers (the test's requests queue meanwhile). SIGTERM: the store is destroyed (unmounted),
// exit 0. Errors: one line on stderr, exit 1.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/fd_store.h"
#include "base/log.h"
#include "base/sd_notify.h"
#include "fusefs/layer_store.h"

int main(int argc, char** argv) {
  using namespace hoist;
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MOUNTPOINT CACHE IMAGE_REF LAYER_DIGEST...\n", argv[0]);
    return 1;
  }
  SetLogLevel(LogLevel::kInfo);
  std::vector<ListenFd> fds = TakeListenFds();
  LayerStoreHandoff handoff;
  for (ListenFd& fd : fds) {
    if (fd.name == kLayersFuseFdName) handoff.fuse_fd = std::move(fd.fd);
    if (fd.name == kLayersStateFdName) handoff.state_fd = std::move(fd.fd);
    if (fd.name == kLayersSlotsFdName) handoff.slots_fd = std::move(fd.fd);
  }
  const bool takeover = handoff.fuse_fd.valid();
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  MountOptions o;
  o.mountpoint = argv[1];
  o.cache_dir = argv[2];
  o.prefetch = PrefetchMode::kNone;
  auto store = LayerStore::Start(o, takeover ? &handoff : nullptr);
  if (!store) {
    std::fprintf(stderr, "helper: %s\n", store.error().message().c_str());
    return 1;
  }
  if (takeover) {
    if (const char* delay = std::getenv("HOIST_TEST_RESTORE_DELAY_MS")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(delay)));
    }
  }
  for (int i = 4; i < argc; ++i) {
    auto digest = Digest::Parse(argv[i]);
    if (!digest) {
      std::fprintf(stderr, "helper: %s\n", digest.error().message().c_str());
      return 1;
    }
    auto dir = (*store)->AddLayer(argv[3], *digest);
    if (!dir) {
      std::fprintf(stderr, "helper: %s\n", dir.error().message().c_str());
      return 1;
    }
  }
  if (Status s = (*store)->Serve(); !s) {
    std::fprintf(stderr, "helper: %s\n", s.error().message().c_str());
    return 1;
  }
  (void)SdNotify("READY=1");
  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  store->reset();
  return 0;
}
