#include "tests/integration/layout_image.h"

#include "tests/harness/subprocess.h"

namespace hoist::testutil {

Result<LayoutImage> ReadLayoutImage(const std::string& dir, const std::string& tag) {
  LayoutImage img;
  img.dir = dir;
  ImageName name;
  name.transport = ImageName::Transport::kOci;
  name.path = dir;
  name.tag = tag;
  HOIST_ASSIGN_OR_RETURN(auto source, OpenImageSource(name, {}));
  HOIST_ASSIGN_OR_RETURN(img.raw, source->TopManifest());
  img.manifest_digest = img.raw.digest;
  HOIST_ASSIGN_OR_RETURN(img.manifest, ParseImageManifest(img.raw.bytes, img.raw.media_type));
  img.config_digest = img.manifest.config.digest;
  HOIST_ASSIGN_OR_RETURN(img.config_bytes, source->ReadBlob(img.manifest.config));
  HOIST_ASSIGN_OR_RETURN(img.config, ParseImageConfig(img.config_bytes));
  return img;
}

Result<Digest> DecompressedDigest(const std::string& blob, const std::string& tool) {
  HOIST_ASSIGN_OR_RETURN(
      std::string out,
      harness::RunChecked({"bash", "-c", tool + " -dc -- \"$0\" | sha256sum", blob}));
  return Digest::Parse("sha256:" + out.substr(0, 64));
}

}  // namespace hoist::testutil
