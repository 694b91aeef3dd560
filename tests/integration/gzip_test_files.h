// The files of the gzip image the lazy-gzip tests mount (zran_mount_test, published_index_test):
// 400 files of about 12 MB, text that compresses and incompressible pattern bytes, so the layer's
// blob spans many checkpoints; then "small.txt".
#pragma once

#include <string>
#include <vector>

#include "tests/harness/oci_image.h"

namespace hoist::testing {

inline std::vector<harness::FileSpec> GzipTestFiles() {
  using harness::FileSpec;
  std::vector<FileSpec> files = {FileSpec::Dir("data"), FileSpec::Dir("text")};
  for (int i = 0; i < 400; ++i) {
    if (i % 2 == 0) {
      std::string t;
      while (t.size() < static_cast<size_t>(500 + 97 * i))
        t += "row " + std::to_string(t.size() % 131) + " of text/t" + std::to_string(i) + "\n";
      files.push_back(FileSpec::File("text/t" + std::to_string(i), t));
    } else {
      files.push_back(FileSpec::BigFile("data/d" + std::to_string(i),
                                        1000 + 57ull * static_cast<uint64_t>(i) * i % 90000,
                                        static_cast<uint32_t>(i)));
    }
  }
  files.push_back(FileSpec::File("small.txt", "the small file\n"));
  return files;
}

}  // namespace hoist::testing
