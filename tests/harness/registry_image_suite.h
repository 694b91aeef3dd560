// RegistryImageSuite<Derived>: the gtest fixture base of integration suites that, once per suite,
// check their programs, make a scratch directory, start a real TestRegistry and push one image
// built from layers (BuildOciImage into WORK/layout, PushOciLayout to REPO:TAG).
//
//   class MyTest : public harness::RegistryImageSuite<MyTest> {
//    protected:
//     static void SetUpTestSuite() {
//       if (!SetUpSuite({.root_message = "the my tests must run as root",
//                        .programs = {"skopeo", "docker-registry"},
//                        .work_template = "/tmp/hoist-my-XXXXXX",
//                        .layers = {...}, .repo = "my/gz"}))
//         return;
//       ... more suite set-up; on failure: *setup_error_ = "why"; return;
//     }
//   };
//
// A failed step leaves its message in *setup_error_ and SetUp() fails every test with it (what
// was made so far is still torn down). The statics are per Derived class (CRTP), so suites of one
// binary do not share them. TearDownTestSuite stops the registry and removes the scratch directory.
// NewDir(name) makes WORK/NAME-N (N counts per suite); Ref() is the pushed image's REF:TAG.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "base/file_util.h"
#include "tests/harness/suite_image.h"

namespace hoist::harness {

template <typename Derived>
class RegistryImageSuite : public ::testing::Test {
 protected:
  // False (with *setup_error_ set) when a step failed.
  static bool SetUpSuite(const SuiteImageSpec& spec) {
    setup_error_ = new std::string();
    repo_ = spec.repo;
    tag_ = spec.tag;
    SuiteImage made;
    Status st = MakeSuiteImage(spec, &made);
    if (!made.work.empty()) work_ = new std::string(made.work);
    registry_ = made.registry.release();
    if (made.image) image_ = new BuiltImage(std::move(*made.image));
    if (!st) *setup_error_ = st.error().message();
    return st.has_value();
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    if (work_ != nullptr) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }
  static std::string Ref() { return registry_->ImageRef(repo_, tag_); }

  static inline std::string* setup_error_ = nullptr;
  static inline std::string* work_ = nullptr;
  static inline TestRegistry* registry_ = nullptr;
  static inline BuiltImage* image_ = nullptr;
  static inline std::string repo_;
  static inline std::string tag_;
  static inline int counter_ = 0;
};

}  // namespace hoist::harness
