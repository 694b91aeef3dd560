// hoist-snapshotter with a FAKE RemoteLayerSource in its seam, for the seam test of
// tests/integration/snapshotter_test.cc (the real binary's source is the layer store). A layer
// counts as lazy when a pre-extracted tree exists at $HOIST_FAKE_LAYER_DIR/<chain id, ':' as '-'>;
// any other layer gets the real answer "not lazy" and is unpacked by containerd. Everything else is
// the real daemon (tools/snapshotter/daemon.h). With $HOIST_FAKE_DUMP_CONFIG set, the factory
// instead writes the DaemonConfig's registry fields there (one `key=value` a line) and fails, so
// a test sees what the flags parsed to.
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "base/file_util.h"
#include "tools/snapshotter/daemon.h"

namespace {

class PreExtractedLayers : public hoist::RemoteLayerSource {
 public:
  explicit PreExtractedLayers(std::string dir) : dir_(std::move(dir)) {}
  hoist::Result<std::string> Resolve(const hoist::RemoteLayerRequest& req) override {
    std::string name = req.chain_id;
    for (char& c : name) {
      if (c == ':') c = '-';
    }
    const std::string path = dir_ + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return hoist::Fail(ENOENT, "no pre-extracted tree at " + path);
    }
    return path;
  }

 private:
  std::string dir_;
};

}  // namespace

int main(int argc, char** argv) {
  const char* dir = std::getenv("HOIST_FAKE_LAYER_DIR");
  std::shared_ptr<hoist::RemoteLayerSource> source;
  if (dir != nullptr && *dir != '\0') source = std::make_shared<PreExtractedLayers>(dir);
  return hoist::SnapshotterMain(
      argc, argv,
      [source](
          hoist::DaemonConfig& config) -> hoist::Result<std::shared_ptr<hoist::RemoteLayerSource>> {
        const char* dump = std::getenv("HOIST_FAKE_DUMP_CONFIG");
        if (dump != nullptr && *dump != '\0') {
          std::string text =
              "hosts_dir=" + config.hosts_dir + "\n" + "registries_conf=" + config.registries_conf +
              "\n" +
              "mirror_connect_timeout_ms=" + std::to_string(config.mirror_connect_timeout_ms) +
              "\n";
          HOIST_RETURN_IF_ERROR(hoist::WriteFileAtomic(dump, text));
          return hoist::Fail(ECANCELED, "configuration written to " + std::string(dump));
        }
        return source;
      });
}
