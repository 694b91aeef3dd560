// MakeSuiteImage: what many integration suites set up once: the programs they need checked, a
// scratch directory (mkdtemp of a template), a real TestRegistry started, and one OCI image built
// from layers (BuildOciImage into WORK/layout) and pushed to the registry as REPO:TAG
// (PushOciLayout). The gtest fixture base around it is registry_image_suite.h.
//
// Errors: EPERM with spec.root_message when root is needed and missing; the message of the
// failing step otherwise (RequirePrograms, "mkdtemp", TestRegistry::Launch, BuildOciImage,
// PushOciLayout). What was made before the failure is in *out, for the caller to tear down.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/test_registry.h"

namespace hoist::harness {

struct SuiteImageSpec {
  std::string root_message;           // non-empty: the set-up error when not run as root
  std::vector<std::string> programs;  // RequirePrograms
  std::string work_template;          // mkdtemp template of the scratch directory
  std::vector<LayerSpec> layers;      // the image, built into WORK/layout with tag `tag`
  std::string repo;                   // pushed to the registry as REPO:TAG
  std::string tag = "v1";
};

// What MakeSuiteImage made so far (on failure too, so it can be torn down).
struct SuiteImage {
  std::string work;  // "" until made
  std::unique_ptr<TestRegistry> registry;
  std::optional<BuiltImage> image;
};
[[nodiscard]] Status MakeSuiteImage(const SuiteImageSpec& spec, SuiteImage* out);

}  // namespace hoist::harness
