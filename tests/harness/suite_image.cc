#include "tests/harness/suite_image.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/harness/subprocess.h"

namespace hoist::harness {

Status MakeSuiteImage(const SuiteImageSpec& spec, SuiteImage* out) {
  if (!spec.root_message.empty() && ::geteuid() != 0) return Fail(EPERM, spec.root_message);
  HOIST_RETURN_IF_ERROR(RequirePrograms(spec.programs));
  std::string templ = spec.work_template;
  if (::mkdtemp(templ.data()) == nullptr) return Fail(errno, "mkdtemp");
  out->work = templ;
  HOIST_ASSIGN_OR_RETURN(out->registry, TestRegistry::Launch());
  HOIST_ASSIGN_OR_RETURN(out->image,
                         BuildOciImage(out->work + "/layout", spec.layers, {.tag = spec.tag}));
  return PushOciLayout(out->image->OciRef(), out->registry->DockerRef(spec.repo, spec.tag));
}

}  // namespace hoist::harness
