// libFuzzer target: the image model parsers of fetcher/manifest.h on registry responses:
// ManifestMediaType (with each Content-Type), ParseImageManifest / ParseImageIndex for each
// media type, SelectPlatform on a parsed index, ParseImageConfig, Platform::Parse.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fetcher/manifest.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (256 << 10)) return 0;
  std::string_view in = hoist::fuzz::AsView(data, size);
  static constexpr std::string_view kTypes[] = {
      hoist::kMediaTypeDockerManifest,
      hoist::kMediaTypeDockerManifestList,
      hoist::kMediaTypeOciManifest,
      hoist::kMediaTypeOciIndex,
      "application/json",
      "",
  };
  for (std::string_view content_type : kTypes) {
    auto media_type = hoist::ManifestMediaType(content_type, in);
    if (!media_type) continue;
    if (hoist::IsIndexMediaType(*media_type)) {
      auto index = hoist::ParseImageIndex(in, *media_type);
      if (index) {
        (void)hoist::SelectPlatform(*index,
                                    hoist::Platform{.os = "linux", .architecture = "amd64"});
        (void)hoist::SelectPlatform(
            *index, hoist::Platform{.os = "linux", .architecture = "arm64", .variant = "v8"});
      }
    } else {
      FUZZ_CHECK(hoist::IsManifestMediaType(*media_type));
      (void)hoist::ParseImageManifest(in, *media_type);
    }
  }
  (void)hoist::ParseImageManifest(in, hoist::kMediaTypeOciManifest);
  (void)hoist::ParseImageIndex(in, hoist::kMediaTypeOciIndex);
  auto config = hoist::ParseImageConfig(in);
  if (config) FUZZ_CHECK(config->raw == in);
  if (size <= 256) {
    auto platform = hoist::Platform::Parse(in);
    if (platform) (void)platform->String();
  }
  (void)hoist::MediaTypeWithoutParams(in.substr(0, 256));
  return 0;
}
