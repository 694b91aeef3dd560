// libFuzzer target: the auth.json / config.json "auths" parsing of DockerCredentialStore (there
// is no pure function for it, so the input is written to a private temporary file that the
// store reads as its $REGISTRY_AUTH_FILE). The docker config points at a directory that does not
// exist, so no credential helper is ever run. Looks up Docker Hub, a host:port and a host.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fetcher/credentials.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// A temporary file owned by this process, removed at exit.
class TempFile {
 public:
  TempFile() {
    // tmpfs if there is one: rewriting a file on ext4 flushes it at close (auto_da_alloc).
    const char* dir = std::getenv("TMPDIR");
    if (access("/dev/shm", W_OK) == 0) dir = "/dev/shm";
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/hoist-fuzz-auth-XXXXXX";
    int fd = mkstemp(path_.data());
    FUZZ_CHECK(fd >= 0);
    close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

  void Write(const uint8_t* data, size_t size) {
    FILE* f = std::fopen(path_.c_str(), "wb");
    FUZZ_CHECK(f != nullptr);
    FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(std::fclose(f) == 0);
  }

 private:
  std::string path_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64 << 10)) return 0;
  static TempFile file;
  file.Write(data, size);
  hoist::DockerCredentialStore store({
      .docker_config_dir = "/nonexistent/hoist-fuzz-docker-config",
      .registry_auth_file = file.path(),
      .xdg_auth_file = "-",
  });
  for (const char* registry : {"docker.io", "localhost:5000", "ghcr.io"}) {
    auto cred = store.Lookup(registry);
    (void)cred;
  }
  return 0;
}
