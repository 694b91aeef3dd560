// Compiled (syntax only) by the StatusCannotBeDropped test, which passes only if the compiler
// rejects both dropped results below: Result/Status are [[nodiscard]] types.
#include "base/status.h"

namespace hoist {

Status MayFail() { return Fail(EIO, "x"); }
Result<int> MayFailWithValue() { return 1; }

void DropsErrors() {
  MayFail();           // must not compile under -Werror=unused-result
  MayFailWithValue();  // nor this
}

}  // namespace hoist
