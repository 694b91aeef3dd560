#include "base/readiness.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/file_util.h"

namespace hoist {

int AwaitReadiness(int fd, pid_t child, std::string_view program, std::string_view what) {
  std::string msg;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const std::string ready = kReadyLine;
  if (msg == ready) return 0;
  if (msg.size() > ready.size() && msg.ends_with("\n" + ready)) {
    std::fputs(msg.substr(0, msg.size() - ready.size()).c_str(), stderr);
    return 0;
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!msg.empty()) {
    std::fputs(msg.c_str(), stderr);
  } else if (WIFSIGNALED(status)) {
    std::fprintf(stderr, "%.*s: the daemon died (signal %d) before %.*s was ready\n",
                 static_cast<int>(program.size()), program.data(), WTERMSIG(status),
                 static_cast<int>(what.size()), what.data());
  } else {
    std::fprintf(stderr, "%.*s: the daemon exited before %.*s was ready\n",
                 static_cast<int>(program.size()), program.data(), static_cast<int>(what.size()),
                 what.data());
  }
  return 1;
}

void DetachFromCaller(const std::string& log_file) {
  ::setsid();
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int log_fd = -1;
  if (!log_file.empty())
    log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
    ::dup2(log_fd >= 0 ? log_fd : null_fd, STDERR_FILENO);
  }
  if (log_fd >= 0) ::close(log_fd);
  if (null_fd > STDERR_FILENO) ::close(null_fd);
}

std::optional<int> ForkAwaitingReady(std::string_view program, std::string_view what,
                                     const std::string& log_file, int* ready_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "%.*s: pipe: %s\n", static_cast<int>(program.size()), program.data(),
                 std::strerror(errno));
    return 1;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::fprintf(stderr, "%.*s: fork: %s\n", static_cast<int>(program.size()), program.data(),
                 std::strerror(errno));
    ::close(fds[0]);
    ::close(fds[1]);
    return 1;
  }
  if (pid > 0) {
    ::close(fds[1]);
    return AwaitReadiness(fds[0], pid, program, what);
  }
  ::close(fds[0]);
  *ready_fd = fds[1];
  DetachFromCaller(log_file);
  return std::nullopt;
}

void TellReadiness(int fd, std::string_view line) {
  if (fd >= 0) {
    (void)WriteAll(fd, line, "the readiness pipe");
  } else if (line != kReadyLine) {
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

}  // namespace hoist
