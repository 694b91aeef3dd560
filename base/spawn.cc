#include "base/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace hoist {
namespace {

using Clock = std::chrono::steady_clock;

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnAttrs {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnAttrs() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttrs(const SpawnAttrs&) = delete;
  SpawnAttrs& operator=(const SpawnAttrs&) = delete;
};

Result<std::pair<ScopedFd, ScopedFd>> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  return std::pair<ScopedFd, ScopedFd>(ScopedFd(fds[0]), ScopedFd(fds[1]));
}

// Writes what is left of `data` to a non-blocking pipe. Returns false when the pipe is done
// with (all written, or the reader is gone).
bool FeedStdin(int fd, const std::string& data, size_t* done) {
  // A child that exits without reading must not kill us with SIGPIPE: block it on this thread
  // for the write and take a SIGPIPE the write raised off the pending set.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  sigset_t pending_before;
  sigpending(&pending_before);
  const ssize_t n = ::write(fd, data.data() + *done, data.size() - *done);
  const int err = errno;
  if (n < 0 && err == EPIPE && !sigismember(&pending_before, SIGPIPE)) {
    timespec zero{0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  if (n > 0) *done += static_cast<size_t>(n);
  if (n < 0) return err == EAGAIN || err == EINTR;
  return *done < data.size();
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit " + std::to_string(code);
}

ExitStatus ExitStatus::FromWaitStatus(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
  }
  return s;
}

Process::~Process() { KillAndReap(); }

Process::Process(Process&& other) noexcept
    : stdin_pipe(std::move(other.stdin_pipe)),
      stdout_pipe(std::move(other.stdout_pipe)),
      stderr_pipe(std::move(other.stderr_pipe)),
      pid_(std::exchange(other.pid_, -1)),
      program_(std::move(other.program_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    stdin_pipe = std::move(other.stdin_pipe);
    stdout_pipe = std::move(other.stdout_pipe);
    stderr_pipe = std::move(other.stderr_pipe);
    pid_ = std::exchange(other.pid_, -1);
    program_ = std::move(other.program_);
  }
  return *this;
}

void Process::KillAndReap() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Result<ExitStatus> Process::Wait() {
  if (pid_ <= 0) return Fail(ECHILD, program_ + ": already reaped");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return Fail(ErrnoError("waiting for " + program_));
  }
  pid_ = -1;
  return ExitStatus::FromWaitStatus(status);
}

Result<std::optional<ExitStatus>> Process::TryWait() {
  if (pid_ <= 0) return Fail(ECHILD, program_ + ": already reaped");
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, WNOHANG)) < 0) {
    if (errno != EINTR) return Fail(ErrnoError("waiting for " + program_));
  }
  if (r == 0) return std::optional<ExitStatus>();
  pid_ = -1;
  return std::optional<ExitStatus>(ExitStatus::FromWaitStatus(status));
}

Status Process::Signal(int sig, bool group) {
  if (pid_ <= 0) return Ok();
  if (::kill(group ? -pid_ : pid_, sig) != 0) {
    return Fail(ErrnoError("signalling " + program_));
  }
  return Ok();
}

Result<Process> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty() || argv[0].empty()) return Fail(EINVAL, "spawn: no program given");
  Process child;
  child.program_ = argv[0];

  SpawnAttrs sa;
  // Descriptors the child's streams are copied from; closed in the parent after the spawn.
  std::vector<ScopedFd> child_ends;
  ScopedFd null_fd;
  const Stdio* streams[3] = {&options.stdin_to, &options.stdout_to, &options.stderr_to};
  ScopedFd* parent_ends[3] = {&child.stdin_pipe, &child.stdout_pipe, &child.stderr_pipe};
  for (int target = 0; target < 3; ++target) {
    const Stdio& s = *streams[target];
    int source = -1;
    switch (s.kind) {
      case Stdio::Kind::kInherit:
        continue;
      case Stdio::Kind::kNull:
        if (!null_fd.valid()) {
          null_fd.Reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
          if (!null_fd.valid()) return Fail(ErrnoError("/dev/null"));
        }
        source = null_fd.get();
        break;
      case Stdio::Kind::kFd:
        if (s.fd < 0)
          return Fail(EBADF, argv[0] + ": bad descriptor for stream " + std::to_string(target));
        source = s.fd;
        if (source <= 2 && source != target) {
          // An earlier stream's dup2 may already have replaced it in the child: copy it first.
          ScopedFd copy(::fcntl(source, F_DUPFD_CLOEXEC, 3));
          if (!copy.valid()) return Fail(ErrnoError("dup " + std::to_string(source)));
          source = copy.get();
          child_ends.push_back(std::move(copy));
        }
        break;
      case Stdio::Kind::kPipe:
      case Stdio::Kind::kCapture: {
        HOIST_ASSIGN_OR_RETURN(auto ends, MakePipe());
        ScopedFd& child_end = target == 0 ? ends.first : ends.second;
        ScopedFd& parent_end = target == 0 ? ends.second : ends.first;
        source = child_end.get();
        *parent_ends[target] = std::move(parent_end);
        child_ends.push_back(std::move(child_end));
        break;
      }
    }
    // dup2(fd, fd) also clears close-on-exec (glibc >= 2.29).
    if (int rc = posix_spawn_file_actions_adddup2(&sa.actions, source, target); rc != 0) {
      return Fail(ErrnoError("spawn file actions", rc));
    }
  }
  if (int rc = posix_spawn_file_actions_addclosefrom_np(&sa.actions, 3); rc != 0) {
    return Fail(ErrnoError("spawn file actions", rc));
  }

  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t mask;
  if (options.signal_mask) {
    mask = *options.signal_mask;
  } else {
    sigemptyset(&mask);
  }
  posix_spawnattr_setsigmask(&sa.attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&sa.attr, &defaults);
  if (options.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&sa.attr, 0);
  }
  posix_spawnattr_setflags(&sa.attr, flags);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env_ptrs;
  char** envp = environ;
  if (options.env) {
    for (const std::string& e : *options.env) env_ptrs.push_back(const_cast<char*>(e.c_str()));
    env_ptrs.push_back(nullptr);
    envp = env_ptrs.data();
  }

  pid_t pid = -1;
  const int rc = options.search_path
                     ? posix_spawnp(&pid, args[0], &sa.actions, &sa.attr, args.data(), envp)
                     : posix_spawn(&pid, args[0], &sa.actions, &sa.attr, args.data(), envp);
  if (rc != 0) return Fail(rc, argv[0] + ": " + std::strerror(rc));
  child.pid_ = pid;
  return child;
}

Result<RunResult> RunAndCapture(const std::vector<std::string>& argv, const SpawnOptions& spawn,
                                const RunOptions& run) {
  const std::string name = argv.empty() ? std::string() : argv[0];
  if (!run.stdin_data.empty() && spawn.stdin_to.kind != Stdio::Kind::kPipe) {
    return Fail(EINVAL, name + ": stdin data needs a stdin pipe");
  }
  if (spawn.stdin_to.kind == Stdio::Kind::kCapture || spawn.stdout_to.kind == Stdio::Kind::kPipe ||
      spawn.stderr_to.kind == Stdio::Kind::kPipe) {
    return Fail(
        EINVAL,
        name + ": RunAndCapture() reads only Capture() streams and writes only a stdin Pipe()");
  }
  HOIST_ASSIGN_OR_RETURN(Process child, Spawn(argv, spawn));
  RunResult result;
  const std::optional<Clock::time_point> deadline =
      run.timeout ? std::optional(Clock::now() + *run.timeout) : std::nullopt;

  size_t fed = 0;
  if (child.stdin_pipe.valid()) {
    if (run.stdin_data.empty()) {
      child.stdin_pipe.Reset();
    } else {
      ::fcntl(child.stdin_pipe.get(), F_SETFL, O_NONBLOCK);
    }
  }
  struct Sink {
    ScopedFd* fd;
    std::string* text;
    bool* truncated;
  };
  Sink sinks[2] = {{&child.stdout_pipe, &result.stdout_text, &result.stdout_truncated},
                   {&child.stderr_pipe, &result.stderr_text, &result.stderr_truncated}};
  char buf[16384];
  while (child.stdin_pipe.valid() || child.stdout_pipe.valid() || child.stderr_pipe.valid()) {
    pollfd pfds[3];
    ScopedFd* owners[3];
    nfds_t n = 0;
    if (child.stdin_pipe.valid()) {
      pfds[n] = {child.stdin_pipe.get(), POLLOUT, 0};
      owners[n++] = &child.stdin_pipe;
    }
    for (const Sink& s : sinks) {
      if (s.fd->valid()) {
        pfds[n] = {s.fd->get(), POLLIN, 0};
        owners[n++] = s.fd;
      }
    }
    int wait_ms = -1;
    if (deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) {
        result.timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(left, 60000));
    }
    const int ready = ::poll(pfds, n, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("waiting for " + name + "'s output"));  // ~Process kills it
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) continue;
      if (owners[i] == &child.stdin_pipe) {
        if (!FeedStdin(child.stdin_pipe.get(), run.stdin_data, &fed)) child.stdin_pipe.Reset();
        continue;
      }
      for (const Sink& s : sinks) {
        if (s.fd != owners[i]) continue;
        const ssize_t got = ::read(s.fd->get(), buf, sizeof(buf));
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) break;
        if (got <= 0) {
          s.fd->Reset();
          break;
        }
        const size_t room = run.max_capture - std::min(run.max_capture, s.text->size());
        const size_t keep = std::min(room, static_cast<size_t>(got));
        s.text->append(buf, keep);
        if (keep < static_cast<size_t>(got)) *s.truncated = true;
      }
    }
  }
  if (result.timed_out) {
    // The child (and with its own group, whatever it started) dies; pipes a grandchild may
    // still hold are not waited for.
    (void)child.Signal(SIGKILL, spawn.new_process_group);
    (void)child.Signal(SIGKILL);
    child.stdin_pipe.Reset();
    child.stdout_pipe.Reset();
    child.stderr_pipe.Reset();
  }
  if (!result.timed_out && deadline) {
    // The streams are closed (or were never pipes) but the child may still run.
    while (true) {
      HOIST_ASSIGN_OR_RETURN(std::optional<ExitStatus> ended, child.TryWait());
      if (ended) {
        result.status = *ended;
        return result;
      }
      if (Clock::now() >= *deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    result.timed_out = true;
    (void)child.Signal(SIGKILL, spawn.new_process_group);
    (void)child.Signal(SIGKILL);
  }
  HOIST_ASSIGN_OR_RETURN(result.status, child.Wait());
  return result;
}

}  // namespace hoist
