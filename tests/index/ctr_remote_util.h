// Test helper: a private containerd (own root, state, socket; no CRI) and ctr-remote 0.12
// conversions of a layer tar to eStargz or zstd:chunked, read back from `ctr images export`.
//
//   auto cd = PrivateContainerd::Start(dir);                       // ~0.1 s
//   auto out = (*cd)->Convert(layer_tar, "esgz", {"--estargz", "--estargz-chunk-size", "65536"});
//   out->blob, out->annotations, out->layer_digest
//
// Thread-safety: one thread. The containerd child is terminated (SIGTERM, then SIGKILL) when the
// object is destroyed (harness::PrivateContainerd, tests/harness/containerd.h). Errors: the failing
// command's (EIO / ETIMEDOUT with its stderr).
#pragma once

#include <rapidjson/document.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/status.h"
#include "tests/harness/containerd.h"
#include "tests/harness/subprocess.h"
#include "tests/index/format_test_util.h"

namespace hoist::testing {

struct ConvertedLayer {
  std::string media_type;
  Digest layer_digest;
  std::string blob;
  std::map<std::string, std::string> annotations;
};

// ctr-remote conversions on top of harness::PrivateContainerd (which starts and stops the
// containerd; this class adds ctr-remote).
class PrivateContainerd {
 public:
  // `dir` must exist and be short enough for a unix socket path (< 80 bytes).
  static Result<std::unique_ptr<PrivateContainerd>> Start(const std::string& dir) {
    HOIST_RETURN_IF_ERROR(harness::RequirePrograms({"ctr-remote", "tar"}));
    auto cd = std::unique_ptr<PrivateContainerd>(new PrivateContainerd());
    cd->dir_ = dir;
    HOIST_ASSIGN_OR_RETURN(cd->containerd_, harness::PrivateContainerd::Start(dir));
    cd->socket_ = cd->containerd_->socket();
    return cd;
  }

  const std::string& socket() const { return socket_; }

  // Imports `layer_tar` (an uncompressed layer) as image example.com/<name>:t, converts it with
  // `ctr-remote image convert --oci <flags>` to example.com/<name>:out, exports it and returns
  // its only layer.
  Result<ConvertedLayer> Convert(const std::string& layer_tar, const std::string& name,
                                 const std::vector<std::string>& flags) {
    const std::string work = dir_ + "/" + name;
    if (Sh("rm -rf " + work + " && mkdir -p " + work +
           " && " HOIST_TEST_SRC_DIR "/make_oci_layout.sh " + layer_tar + " " + work +
           "/layout && tar -C " + work + "/layout -cf " + work + "/img.tar .") != 0)
      return Fail(EIO, "building the OCI archive for " + name + " failed");
    const std::string src = "example.com/" + name + ":t";
    const std::string dst = "example.com/" + name + ":out";
    const harness::CommandOptions copts{.timeout = std::chrono::seconds(120)};
    HOIST_RETURN_IF_ERROR(harness::RunChecked(
        {"ctr", "-a", socket_, "images", "import", "--no-unpack", "--all-platforms", "--base-name",
         "example.com/" + name, work + "/img.tar"},
        copts));
    std::vector<std::string> conv = {"ctr-remote", "-a",    socket_,          "image",
                                     "convert",    "--oci", "--all-platforms"};
    conv.insert(conv.end(), flags.begin(), flags.end());
    conv.push_back(src);
    conv.push_back(dst);
    HOIST_RETURN_IF_ERROR(harness::RunChecked(conv, copts));
    HOIST_RETURN_IF_ERROR(
        harness::RunChecked({"ctr", "-a", socket_, "images", "export", "--skip-manifest-json",
                             "--all-platforms", work + "/out.tar", dst},
                            copts));
    if (Sh("mkdir -p " + work + "/out && tar -C " + work + "/out -xf " + work + "/out.tar") != 0)
      return Fail(EIO, "extracting the export of " + name + " failed");
    rapidjson::Document idoc;
    std::string index = Slurp(work + "/out/index.json");
    idoc.Parse(index.c_str());
    if (idoc.HasParseError() || !idoc.HasMember("manifests") || idoc["manifests"].Empty())
      return Fail(EBADMSG, "export index.json of " + name + " is not an index");
    std::string mdig = idoc["manifests"][0]["digest"].GetString();
    std::string manifest = Slurp(work + "/out/blobs/sha256/" + mdig.substr(7));
    rapidjson::Document mdoc;
    mdoc.Parse(manifest.c_str());
    if (mdoc.HasParseError() || !mdoc.HasMember("layers") || mdoc["layers"].Size() != 1)
      return Fail(EBADMSG, "exported manifest of " + name + " does not have one layer");
    const auto& layer = mdoc["layers"][0];
    ConvertedLayer out;
    out.media_type = layer["mediaType"].GetString();
    HOIST_ASSIGN_OR_RETURN(out.layer_digest, Digest::Parse(layer["digest"].GetString()));
    if (layer.HasMember("annotations"))
      for (const auto& m : layer["annotations"].GetObject())
        out.annotations[m.name.GetString()] = m.value.GetString();
    out.blob = Slurp(work + "/out/blobs/sha256/" + std::string(out.layer_digest.hex()));
    if (out.blob.size() != layer["size"].GetUint64() || Digest::Of(out.blob) != out.layer_digest)
      return Fail(EIO, "exported layer blob of " + name + " does not match its descriptor");
    return out;
  }

 private:
  PrivateContainerd() = default;
  std::string dir_;
  std::string socket_;
  std::unique_ptr<harness::PrivateContainerd> containerd_;
};

}  // namespace hoist::testing
