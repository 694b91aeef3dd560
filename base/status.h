// Errors as values.
//
// Every fallible function returns Result<T> (or Status for no value). An Error carries an errno
// (the one FUSE replies with, and the exit reason for tools) and a one-line human message that
// names what failed. Errors are created where the failure is detected and are only ever extended
// with context ("pulling layer sha256:...: ") on the way up; they are translated once, at the
// edge (fuse_reply_err, a tool's exit code).
//
// Thread-safety: plain values; copy freely.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace hoist {

class [[nodiscard]] Error {
 public:
  Error(int code, std::string message) : code_(code), message_(std::move(message)) {}

  // The errno this error maps to (EIO, ENOENT, EACCES, ...). Never 0.
  int code() const { return code_ == 0 ? EIO : code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message".
  Error Context(std::string_view context) const {
    return Error(code_, std::string(context) + ": " + message_);
  }

 private:
  int code_;
  std::string message_;
};

// Result<T> and Status are std::expected<T, Error> that cannot be dropped: the type is
// [[nodiscard]], so ignoring a returned error is a compiler warning, and an error in the
// -Werror build of scripts/test.sh. To drop one on purpose, cast it to (void) and say why.
template <class T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(std::expected<T, Error> e)  // NOLINT(google-explicit-constructor): the same value
      : std::expected<T, Error>(std::move(e)) {}
};
using Status = Result<void>;

inline std::unexpected<Error> Fail(int code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
inline std::unexpected<Error> Fail(Error e) { return std::unexpected<Error>(std::move(e)); }

// An error for a failed system call: "what: strerror(errno)", with errno captured.
Error ErrnoError(std::string_view what, int err = errno);

inline Status Ok() { return {}; }

}  // namespace hoist

#define HOIST_CONCAT_INNER(a, b) a##b
#define HOIST_CONCAT(a, b) HOIST_CONCAT_INNER(a, b)

// Returns the error from the enclosing function if `expr` (a Status or Result) failed.
#define HOIST_RETURN_IF_ERROR(expr)                                      \
  do {                                                                   \
    auto&& hoist_status_ = (expr);                                       \
    if (!hoist_status_) return ::std::unexpected(hoist_status_.error()); \
  } while (0)

// `lhs = value of expr`, or returns its error from the enclosing function.
#define HOIST_ASSIGN_OR_RETURN(lhs, expr) \
  HOIST_ASSIGN_OR_RETURN_IMPL(HOIST_CONCAT(hoist_result_, __LINE__), lhs, expr)
#define HOIST_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)           \
  auto tmp = (expr);                                          \
  if (!tmp) return ::std::unexpected(std::move(tmp).error()); \
  lhs = std::move(tmp).value()
