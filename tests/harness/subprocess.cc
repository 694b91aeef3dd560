#include "tests/harness/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <thread>

#include "base/scoped_fd.h"

extern char** environ;

namespace hoist::harness {
namespace {

using Clock = std::chrono::steady_clock;

// Everything exec needs, prepared before fork (only async-signal-safe calls happen after it).
struct ExecPlan {
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string cwd;
};

ExecPlan MakePlan(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::string& cwd) {
  ExecPlan plan;
  plan.argv_storage = argv;
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    merged[entry.substr(0, entry.find('='))] = entry;
  }
  for (const std::string& entry : env) merged[entry.substr(0, entry.find('='))] = entry;
  for (auto& [key, entry] : merged) plan.env_storage.push_back(entry);
  for (std::string& s : plan.argv_storage) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  for (std::string& s : plan.env_storage) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  plan.cwd = cwd;
  return plan;
}

// In the child: report errno on `err_fd` and exit 127.
[[noreturn]] void ChildFail(int err_fd) {
  int e = errno;
  ssize_t ignored = ::write(err_fd, &e, sizeof e);
  (void)ignored;
  ::_exit(127);
}

// Forks and execs. fds[0..2] become the child's stdin/stdout/stderr. Returns the pid, or an
// error if fork failed or exec failed (reported through a CLOEXEC pipe).
Result<pid_t> ForkExec(const ExecPlan& plan, const int fds[3], bool die_with_parent) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe2"));
  ScopedFd err_read(err_pipe[0]);
  ScopedFd err_write(err_pipe[1]);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    ::setpgid(0, 0);
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    // Restore default signal dispositions and an empty mask for the new program.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    for (int i = 0; i < 3; ++i) {
      if (::dup2(fds[i], i) < 0) ChildFail(err_write.get());
    }
    if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0) ChildFail(err_write.get());
    ::execvpe(plan.argv[0], plan.argv.data(), plan.envp.data());
    ChildFail(err_write.get());
  }
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  err_write.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status;
    ::waitpid(pid, &status, 0);
    return Fail(child_errno,
                std::string("cannot run ") + plan.argv[0] + ": " + std::strerror(child_errno));
  }
  return pid;
}

Result<ScopedFd> OpenFile(const std::string& path, int flags) {
  ScopedFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  if (!fd.valid()) return Fail(ErrnoError(path));
  return fd;
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

// The last non-empty lines of `text`, joined with " | ", at most ~400 characters.
std::string Tail(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.size() > 400) t = "..." + t.substr(t.size() - 400);
  for (char& c : t) {
    if (c == '\n') c = '|';
  }
  return t;
}

}  // namespace

std::string CommandResult::Describe() const {
  if (timed_out) return "timed out";
  if (term_signal != 0) return "killed by signal " + std::to_string(term_signal);
  return "exit " + std::to_string(exit_code);
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options) {
  if (argv.empty()) return Fail(EINVAL, "RunCommand: empty argv");
  ExecPlan plan = MakePlan(argv, options.env, options.cwd);

  ScopedFd child_in, child_out, child_err, in_w, out_r, err_r;
  int p[2];
  if (!options.stdin_path.empty()) {
    HOIST_ASSIGN_OR_RETURN(child_in, OpenFile(options.stdin_path, O_RDONLY));
  } else if (!options.stdin_data.empty()) {
    if (::pipe2(p, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe2"));
    child_in.Reset(p[0]);
    in_w.Reset(p[1]);
  } else {
    HOIST_ASSIGN_OR_RETURN(child_in, OpenFile("/dev/null", O_RDONLY));
  }
  if (!options.stdout_path.empty()) {
    HOIST_ASSIGN_OR_RETURN(child_out, OpenFile(options.stdout_path, O_WRONLY | O_CREAT | O_TRUNC));
  } else {
    if (::pipe2(p, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe2"));
    out_r.Reset(p[0]);
    child_out.Reset(p[1]);
  }
  if (::pipe2(p, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe2"));
  err_r.Reset(p[0]);
  child_err.Reset(p[1]);

  int fds[3] = {child_in.get(), child_out.get(), child_err.get()};
  HOIST_ASSIGN_OR_RETURN(pid_t pid, ForkExec(plan, fds, /*die_with_parent=*/false));
  child_in.Reset();
  child_out.Reset();
  child_err.Reset();

  CommandResult result;
  size_t in_done = 0;
  if (in_w.valid()) ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  const auto deadline = Clock::now() + options.timeout;
  char buf[65536];
  while (out_r.valid() || err_r.valid() || in_w.valid()) {
    pollfd pfds[3];
    int n = 0;
    ScopedFd* owners[3];
    for (ScopedFd* fd : {&out_r, &err_r}) {
      if (fd->valid()) {
        pfds[n] = {fd->get(), POLLIN, 0};
        owners[n++] = fd;
      }
    }
    if (in_w.valid()) {
      pfds[n] = {in_w.get(), POLLOUT, 0};
      owners[n++] = &in_w;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    int r = ::poll(pfds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0) {
      if (errno == EINTR) continue;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return Fail(ErrnoError("poll"));
    }
    for (int i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) continue;
      if (owners[i] == &in_w) {
        ssize_t w = ::write(in_w.get(), options.stdin_data.data() + in_done,
                            options.stdin_data.size() - in_done);
        if (w > 0) in_done += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_done == options.stdin_data.size()) {
          in_w.Reset();  // EPIPE (child closed stdin) or all written: close to signal EOF
        }
        continue;
      }
      ssize_t got = ::read(owners[i]->get(), buf, sizeof buf);
      if (got > 0) {
        (owners[i] == &out_r ? result.stdout_text : result.stderr_text)
            .append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        owners[i]->Reset();
      }
    }
  }
  if (result.timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  if (result.timed_out) {
    ::waitpid(pid, &status, 0);
  } else {
    // Pipes are closed, but the child may still be running (stdout was a file): wait with the
    // deadline.
    for (;;) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) return Fail(ErrnoError("waitpid"));
      if (Clock::now() > deadline) {
        result.timed_out = true;
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (!result.timed_out) {
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  }
  return result;
}

Result<std::string> RunChecked(const std::vector<std::string>& argv,
                               const CommandOptions& options) {
  HOIST_ASSIGN_OR_RETURN(CommandResult r, RunCommand(argv, options));
  if (!r.ok()) {
    return Fail(r.timed_out ? ETIMEDOUT : EIO,
                "`" + JoinArgv(argv) + "` failed (" + r.Describe() + "): " + Tail(r.stderr_text));
  }
  return std::move(r.stdout_text);
}

bool HaveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0;
  const char* path = ::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

Status RequirePrograms(const std::vector<std::string>& programs) {
  for (const std::string& p : programs) {
    if (!HaveProgram(p)) {
      return Fail(ENOENT,
                  "required test tool `" + p + "` is not installed (run scripts/setup.sh as root)");
    }
  }
  return Ok();
}

ChildProcess::~ChildProcess() { Terminate(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), wait_status_(other.wait_status_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Terminate();
    pid_ = std::exchange(other.pid_, -1);
    wait_status_ = other.wait_status_;
  }
  return *this;
}

Result<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                         const Options& options) {
  if (argv.empty()) return Fail(EINVAL, "ChildProcess: empty argv");
  ExecPlan plan = MakePlan(argv, options.env, options.cwd);
  HOIST_ASSIGN_OR_RETURN(ScopedFd in, OpenFile("/dev/null", O_RDONLY));
  HOIST_ASSIGN_OR_RETURN(ScopedFd out,
                         OpenFile(options.stdout_path, O_WRONLY | O_CREAT | O_APPEND));
  HOIST_ASSIGN_OR_RETURN(ScopedFd err,
                         OpenFile(options.stderr_path, O_WRONLY | O_CREAT | O_APPEND));
  int fds[3] = {in.get(), out.get(), err.get()};
  HOIST_ASSIGN_OR_RETURN(pid_t pid, ForkExec(plan, fds, options.die_with_parent));
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

bool ChildProcess::Running() {
  if (pid_ < 0) return false;
  int status;
  pid_t w = ::waitpid(pid_, &status, WNOHANG);
  if (w == pid_) {
    wait_status_ = status;
    pid_ = -1;
    return false;
  }
  return true;
}

void ChildProcess::Terminate(std::chrono::milliseconds grace) {
  if (pid_ < 0) return;
  if (grace.count() > 0) {
    ::kill(-pid_, SIGTERM);
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
      if (!Running()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  wait_status_ = status;
  pid_ = -1;
}

CommandResult RunForResult(const std::vector<std::string>& argv, const CommandOptions& options) {
  auto r = RunCommand(argv, options);
  if (r) return *std::move(r);
  CommandResult failed;
  failed.stderr_text = r.error().message();
  return failed;
}

}  // namespace hoist::harness
