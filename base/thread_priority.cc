#include "base/thread_priority.h"

#include <sys/resource.h>
#include <unistd.h>

namespace hoist {

void LowerThisThreadPriority() {
  // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kBackgroundNice);
}

}  // namespace hoist
