#include "tools/supervisor/worker_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/scoped_fd.h"
#include "tools/supervisor/worker_env.h"

namespace hoist {
namespace {

constexpr int kFirstFd = 3;
constexpr char kListenPidPrefix[] = "LISTEN_PID=";

std::string_view KeyOf(std::string_view assignment) {
  return assignment.substr(0, assignment.find('='));
}

bool IsProtocolVariable(std::string_view key) {
  static constexpr std::string_view kNames[] = {
      "LISTEN_PID",      "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
      kEnvSupervisorPid, kEnvReadyFd,  kEnvLifelineFd,   kEnvPreviousPid};
  return std::find(std::begin(kNames), std::end(kNames), key) != std::end(kNames);
}

// The variables SpawnWorker sets itself, from the fds it places.
bool IsFdVariable(std::string_view key) {
  static constexpr std::string_view kNames[] = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                                                kEnvReadyFd, kEnvLifelineFd};
  return std::find(std::begin(kNames), std::end(kNames), key) != std::end(kNames);
}

// Closes [from, to] (inclusive); close_range(2) where the kernel has it.
void CloseRange(int from, int to) {
  if (from > to) return;
  if (::close_range(static_cast<unsigned>(from), static_cast<unsigned>(to), 0) == 0) return;
  const int last = std::min(to, 65535);
  for (int fd = from; fd <= last; ++fd) ::close(fd);
}

// Writes `value` in decimal at `out` (room for 20 digits and a NUL). No allocation: runs in the
// child between fork and exec.
void FormatPid(pid_t value, char* out) {
  char digits[24];
  int n = 0;
  unsigned long v = static_cast<unsigned long>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

// The child between fork and exec: place the fds, clear the mask, exec. Reports a failure's
// errno on `error_fd` (close-on-exec, so a successful exec closes it with nothing written).
[[noreturn]] void ExecWorker(const std::vector<int>& sources, int error_fd, char* listen_pid_slot,
                             char* const* argv, char* const* envp) {
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  const int count = static_cast<int>(sources.size());
  const int high = kFirstFd + count;
  int err = 0;
  // Copy everything above the target range first, so no dup2 clobbers a source still needed.
  int moved_error_fd = ::fcntl(error_fd, F_DUPFD_CLOEXEC, high);
  if (moved_error_fd < 0) _exit(127);
  int moved[256 + 8];
  for (int i = 0; i < count && err == 0; ++i) {
    moved[i] = ::fcntl(sources[static_cast<size_t>(i)], F_DUPFD_CLOEXEC, high);
    if (moved[i] < 0) err = errno;
  }
  for (int i = 0; i < count && err == 0; ++i) {
    if (::dup2(moved[i], kFirstFd + i) < 0) err = errno;  // dup2 clears close-on-exec
  }
  if (err == 0) {
    CloseRange(high, moved_error_fd - 1);
    CloseRange(moved_error_fd + 1, 0x7fffffff);
    if (listen_pid_slot != nullptr) FormatPid(::getpid(), listen_pid_slot);
    ::execve(argv[0], argv, envp);
    err = errno;
  }
  ssize_t ignored = ::write(moved_error_fd, &err, sizeof(err));
  (void)ignored;
  _exit(127);
}

}  // namespace

std::vector<std::string> WorkerEnvironment(const std::vector<std::string>& base,
                                           const std::vector<std::string>& overrides) {
  std::vector<std::string> out;
  for (const std::string& a : base) {
    const std::string_view key = KeyOf(a);
    if (a.find('=') == std::string::npos || IsProtocolVariable(key)) continue;
    const bool overridden = std::any_of(overrides.begin(), overrides.end(),
                                        [&](const std::string& o) { return KeyOf(o) == key; });
    if (!overridden) out.push_back(a);
  }
  for (const std::string& o : overrides) {
    // The last of several assignments to one name wins, as with putenv.
    std::erase_if(out, [&](const std::string& a) { return KeyOf(a) == KeyOf(o); });
    out.push_back(o);
  }
  return out;
}

Result<pid_t> SpawnWorker(const WorkerSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/')
    return Fail(EINVAL, "the worker's argv[0] must be an absolute path");
  if (spec.listen_names.size() != spec.listen_fds.size())
    return Fail(EINVAL, "one name per stored fd");
  if (spec.listen_fds.size() > 256) return Fail(E2BIG, "too many fds for a worker");

  std::vector<int> sources = spec.listen_fds;
  std::vector<std::string> env;
  for (const std::string& a : spec.env) {
    if (!IsFdVariable(KeyOf(a))) env.push_back(a);
  }
  size_t listen_pid_index = SIZE_MAX;  // none
  if (!spec.listen_fds.empty()) {
    std::string names;
    for (const std::string& n : spec.listen_names) names += (names.empty() ? "" : ":") + n;
    env.push_back("LISTEN_FDS=" + std::to_string(spec.listen_fds.size()));
    env.push_back("LISTEN_FDNAMES=" + names);
    listen_pid_index = env.size();
    env.push_back(std::string(kListenPidPrefix) + std::string(24, '\0'));  // filled in the child
  }
  if (spec.ready_fd >= 0) {
    env.push_back(std::string(kEnvReadyFd) + "=" + std::to_string(kFirstFd + sources.size()));
    sources.push_back(spec.ready_fd);
  }
  if (spec.lifeline_fd >= 0) {
    env.push_back(std::string(kEnvLifelineFd) + "=" + std::to_string(kFirstFd + sources.size()));
    sources.push_back(spec.lifeline_fd);
  }

  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& a : env) envp.push_back(a.data());
  envp.push_back(nullptr);
  char* listen_pid_slot = listen_pid_index != SIZE_MAX
                              ? env[listen_pid_index].data() + std::strlen(kListenPidPrefix)
                              : nullptr;

  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe for starting a worker"));
  ScopedFd error_read(error_pipe[0]);
  ScopedFd error_write(error_pipe[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork for " + spec.argv[0]));
  if (pid == 0) ExecWorker(sources, error_write.get(), listen_pid_slot, argv.data(), envp.data());
  error_write.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(error_read.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return pid;  // the exec happened: the pipe closed with nothing written
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(child_errno))) child_errno = EIO;
  return Fail(ErrnoError(spec.argv[0], child_errno));
}

}  // namespace hoist
