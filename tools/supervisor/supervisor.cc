#include "tools/supervisor/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "base/fd_store.h"
#include "base/log.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "tools/supervisor/reaper.h"
#include "tools/supervisor/stored_fds.h"
#include "tools/supervisor/worker_env.h"
#include "tools/supervisor/worker_spawn.h"

extern char** environ;

namespace hoist {
namespace {

// The signals the loop reads from its signalfd.
constexpr int kLoopSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR2};

// "signal 9", "exit 3".
std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "exit " + std::to_string(WEXITSTATUS(status));
}

// The worker's exit code, or 1 if it was killed.
int ExitCodeOf(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 1; }

struct Worker {
  pid_t pid = -1;
  bool ready = false;  // sent READY=1
  bool first = false;  // the first worker of the service (holds the readiness pipe)
};

class Supervisor {
 public:
  explicit Supervisor(const SupervisorOptions& options)
      : options_(options),
        name_(options.name),
        max_quick_failures_(std::max(1, options.max_quick_failures)),
        ready_fd_(options.ready_fd) {}
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  int Run();

 private:
  [[nodiscard]] Status Start();
  [[nodiscard]] Result<pid_t> SpawnOne(bool first, pid_t previous);
  bool Done() const { return ending_ && current_.pid < 0 && !upgrading_ && draining_.empty(); }
  void DrainNotifications();
  void Handle(Notification n);
  void ReadSignals();
  void Reap();
  void OnExit(pid_t pid, int status);
  void Restart();
  void StartUpgrade();
  void FinishUpgrade();
  void Stop(int sig);
  void End(int code);
  void GiveUp(const std::string& why);
  void Finish();

  const SupervisorOptions& options_;
  const std::string& name_;
  const int max_quick_failures_;
  ScopedFd ready_fd_;
  Reaper reaper_;
  bool mask_saved_ = false;
  sigset_t old_mask_;
  ScopedFd signal_fd_;
  std::optional<NotifyListener> listener_;
  std::vector<std::string> worker_env_;
  StoredFds stored_;
  Worker current_;
  std::optional<Worker> upgrading_;  // started by SIGUSR2, not ready yet
  std::vector<pid_t> draining_;      // old workers of finished upgrades, told SIGUSR1
  int quick_failures_ = 0;           // workers in a row that died before READY=1
  bool ending_ = false;              // no more starts; exit once every worker is gone
  std::optional<int> exit_code_;     // decided, or: the current worker's when it exits
  bool unmounted_ = false;
  bool finished_ = false;
};

Supervisor::~Supervisor() { Finish(); }

Status Supervisor::Start() {
  const std::vector<std::string>& argv = options_.worker_argv;
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    return Fail(EINVAL, "the worker's argv[0] must be an absolute path");
  const std::string& mp = options_.cleanup_mountpoint;
  if (!mp.empty() && mp[0] != '/') return Fail(EINVAL, "the mountpoint must be an absolute path");

  // First, while nothing is blocked and no fd of the service exists yet.
  HOIST_ASSIGN_OR_RETURN(reaper_, StartReaper(name_, mp));

  sigset_t loop_set;
  sigemptyset(&loop_set);
  for (int sig : kLoopSignals) sigaddset(&loop_set, sig);
  sigset_t blocked = loop_set;
  sigaddset(&blocked, SIGPIPE);  // a gone reader of the readiness pipe is an EPIPE, not a death
  if (::sigprocmask(SIG_BLOCK, &blocked, &old_mask_) != 0) return Fail(ErrnoError("sigprocmask"));
  mask_saved_ = true;
  signal_fd_.Reset(::signalfd(-1, &loop_set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_.valid()) return Fail(ErrnoError("signalfd"));

  HOIST_ASSIGN_OR_RETURN(NotifyListener listener, NotifyListener::Create(name_));
  listener_.emplace(std::move(listener));

  std::vector<std::string> base;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) base.emplace_back(*e);
  std::vector<std::string> overrides = options_.worker_env;
  overrides.push_back("NOTIFY_SOCKET=" + listener_->address());
  overrides.push_back(std::string(kEnvSupervisorPid) + "=" + std::to_string(::getpid()));
  worker_env_ = WorkerEnvironment(base, overrides);

  HOIST_ASSIGN_OR_RETURN(const pid_t pid, SpawnOne(/*first=*/true, 0));
  current_ = Worker{pid, false, true};
  // The first worker has its own copy now: if it dies before ready, the parent sees EOF.
  ready_fd_.Reset();
  HOIST_LOG(kInfo) << name_ << ": supervising worker pid " << pid;
  return Ok();
}

Result<pid_t> Supervisor::SpawnOne(bool first, pid_t previous) {
  WorkerSpec spec;
  spec.argv = options_.worker_argv;
  spec.env = worker_env_;
  if (previous > 0)
    spec.env.push_back(std::string(kEnvPreviousPid) + "=" + std::to_string(previous));
  spec.listen_fds = stored_.Fds();
  spec.listen_names = stored_.Names();
  spec.ready_fd = first ? ready_fd_.get() : -1;
  spec.lifeline_fd = reaper_.lifeline.get();
  return SpawnWorker(spec);
}

int Supervisor::Run() {
  if (Status started = Start(); !started) {  // no worker runs: Start spawns it last
    const std::string line = name_ + ": supervisor: " + started.error().message();
    HOIST_LOG(kError) << line;
    if (ready_fd_.valid()) {
      const std::string text = line + "\n";
      ssize_t ignored = ::write(ready_fd_.get(), text.data(), text.size());  // nobody: dropped
      (void)ignored;
      ready_fd_.Reset();
    }
    exit_code_ = 1;
    Finish();
    return 1;
  }
  while (!Done()) {
    pollfd polled[2] = {{signal_fd_.get(), POLLIN, 0}, {listener_->fd(), POLLIN, 0}};
    if (::poll(polled, 2, -1) < 0) {
      if (errno == EINTR) continue;
      HOIST_LOG(kError) << name_ << ": supervisor: poll: " << std::strerror(errno);
      break;
    }
    // Notifications first: a worker's last datagrams (FDSTORE, READY) were queued before it
    // died, so they are read before its death is handled (and while its pid still names it).
    DrainNotifications();
    ReadSignals();
    Reap();
  }
  Finish();
  return exit_code_.value_or(1);
}

void Supervisor::DrainNotifications() {
  while (true) {
    Result<Notification> n = listener_->Receive();
    if (!n) {
      const int code = n.error().code();
      if (code == EAGAIN || code == EWOULDBLOCK) return;
      HOIST_LOG(kWarning) << name_ << ": " << n.error().message();
      if (code == EMSGSIZE) continue;  // that datagram is consumed; read the next
      return;
    }
    Handle(std::move(*n));
  }
}

void Supervisor::Handle(Notification n) {
  Worker* from = nullptr;
  if (n.sender > 0 && n.sender == current_.pid) from = &current_;
  if (n.sender > 0 && upgrading_ && n.sender == upgrading_->pid) from = &*upgrading_;
  if (from == nullptr) {
    HOIST_LOG(kInfo) << name_ << ": ignored a notification from pid " << n.sender;
    return;  // its fds close here
  }
  const std::string& text = n.text;
  if (const std::string status = NotificationValue(text, "STATUS"); !status.empty()) {
    HOIST_LOG(kInfo) << name_ << ": worker pid " << from->pid << ": " << status;
  }
  if (NotificationValue(text, "FDSTORE") == "1") {
    std::string fd_name = NotificationValue(text, "FDNAME");
    if (fd_name.empty()) fd_name = "stored";  // systemd's default name
    const size_t count = n.fds.size();
    if (Status put = stored_.Put(fd_name, std::move(n.fds)); !put) {
      HOIST_LOG(kWarning) << name_ << ": worker pid " << from->pid << ": " << put.error().message();
    } else {
      HOIST_LOG(kInfo) << name_ << ": stored " << count << " fd(s) as \"" << fd_name << "\"";
    }
  } else if (!n.fds.empty()) {
    HOIST_LOG(kWarning) << name_ << ": worker pid " << from->pid
                        << " passed fds without FDSTORE=1; closed them";
  }
  if (NotificationValue(text, "FDSTOREREMOVE") == "1") {
    const std::string fd_name = NotificationValue(text, "FDNAME");
    if (stored_.Remove(fd_name)) {
      HOIST_LOG(kInfo) << name_ << ": dropped the stored fds \"" << fd_name << "\"";
    }
  }
  if (NotificationValue(text, "READY") == "1" && !from->ready) {
    from->ready = true;
    quick_failures_ = 0;
    if (from == &current_) {
      HOIST_LOG(kInfo) << name_ << ": worker pid " << current_.pid << " is ready";
    } else {
      FinishUpgrade();
    }
  }
}

void Supervisor::ReadSignals() {
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    const int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGUSR2) {
      StartUpgrade();
    } else if (sig != SIGCHLD) {
      Stop(sig);
    }
    // SIGCHLD: Reap() runs after every wake-up anyway.
  }
}

void Supervisor::Reap() {
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;  // 0: children run; -1: none left (ECHILD)
    // Whatever it sent before it died is queued by now, and the sender pid still reads as its
    // own: take it (a last FDSTORE, READY) before its exit is judged.
    DrainNotifications();
    OnExit(pid, status);
  }
}

void Supervisor::OnExit(pid_t pid, int status) {
  const std::string how = DescribeExit(status);
  if (pid == reaper_.pid) {
    reaper_.pid = -1;
    HOIST_LOG(kWarning) << name_ << ": the reaper pid " << pid << " ended (" << how << ")";
    return;
  }
  if (auto it = std::find(draining_.begin(), draining_.end(), pid); it != draining_.end()) {
    draining_.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      HOIST_LOG(kInfo) << name_ << ": the replaced worker pid " << pid << " finished";
    } else {
      HOIST_LOG(kWarning) << name_ << ": the replaced worker pid " << pid << " ended (" << how
                          << ")";
    }
    return;
  }
  if (upgrading_ && pid == upgrading_->pid) {
    upgrading_.reset();
    if (!ending_) {
      HOIST_LOG(kWarning) << name_ << ": upgrade failed: the new worker pid " << pid << " ended ("
                          << how << ") before it was ready; pid " << current_.pid
                          << " keeps serving";
    }
    return;
  }
  if (pid != current_.pid) return;  // not a worker of ours

  const Worker dead = current_;
  current_ = Worker{};
  if (ending_) {
    if (!exit_code_) exit_code_ = ExitCodeOf(status);
    return;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    HOIST_LOG(kInfo) << name_ << ": worker pid " << pid << " exited 0: the service ended";
    End(0);
    return;
  }
  if (dead.first && !dead.ready) {
    HOIST_LOG(kWarning) << name_ << ": the first worker pid " << pid << " ended (" << how
                        << ") before it was ready; not restarting";
    End(ExitCodeOf(status));
    return;
  }
  if (!dead.ready) ++quick_failures_;
  if (upgrading_) {  // the upgrade in progress already holds the stored fds: it takes over
    current_ = *upgrading_;
    upgrading_.reset();
    HOIST_LOG(kWarning) << name_ << ": worker pid " << pid << " died (" << how << "); pid "
                        << current_.pid << ", starting as its upgrade, takes over";
    return;
  }
  const std::string died = "worker pid " + std::to_string(pid) + " died (" + how + ")";
  if (quick_failures_ >= max_quick_failures_) {
    GiveUp(died + "; " + std::to_string(quick_failures_) +
           " workers in a row died before they were ready");
    return;
  }
  if (stored_.empty()) {
    GiveUp(died + " and stored no fds to take over");
    return;
  }
  HOIST_LOG(kWarning) << name_ << ": " << died << "; restarting";
  Restart();
}

void Supervisor::Restart() {
  while (true) {
    Result<pid_t> pid = SpawnOne(/*first=*/false, 0);
    if (pid) {
      current_ = Worker{*pid, false, false};
      return;
    }
    HOIST_LOG(kWarning) << name_ << ": restarting the worker: " << pid.error().message();
    if (++quick_failures_ >= max_quick_failures_) {
      GiveUp("the worker could not be restarted: " + pid.error().message());
      return;
    }
  }
}

void Supervisor::StartUpgrade() {
  const char* ignored = nullptr;
  if (ending_) {
    ignored = "the service is stopping";
  } else if (upgrading_) {
    ignored = "an upgrade is already under way";
  } else if (!current_.ready) {
    ignored = "the worker is not ready yet";
  } else if (stored_.empty()) {
    ignored = "the worker stored no fds to hand over";
  }
  if (ignored != nullptr) {
    HOIST_LOG(kWarning) << name_ << ": SIGUSR2 ignored: " << ignored;
    return;
  }
  Result<pid_t> pid = SpawnOne(/*first=*/false, current_.pid);
  if (!pid) {
    HOIST_LOG(kWarning) << name_ << ": upgrade failed: " << pid.error().message() << "; pid "
                        << current_.pid << " keeps serving";
    return;
  }
  upgrading_ = Worker{*pid, false, false};
  HOIST_LOG(kInfo) << name_ << ": upgrade: started pid " << *pid << " to replace pid "
                   << current_.pid;
}

void Supervisor::FinishUpgrade() {
  const pid_t old = current_.pid;
  current_ = *upgrading_;
  upgrading_.reset();
  if (old > 0) {
    if (::kill(old, SIGUSR1) == 0) draining_.push_back(old);
  }
  HOIST_LOG(kInfo) << name_ << ": upgraded: pid " << current_.pid << " serves; pid " << old
                   << " finishes its requests";
}

void Supervisor::Stop(int sig) {
  HOIST_LOG(kInfo) << name_ << ": " << strsignal(sig) << ": stopping the worker";
  ending_ = true;
  if (current_.pid > 0) (void)::kill(current_.pid, SIGTERM);
  if (upgrading_) (void)::kill(upgrading_->pid, SIGTERM);
}

void Supervisor::End(int code) {
  if (!exit_code_) exit_code_ = code;
  ending_ = true;
  if (current_.pid > 0) (void)::kill(current_.pid, SIGTERM);
  if (upgrading_) (void)::kill(upgrading_->pid, SIGTERM);
}

void Supervisor::GiveUp(const std::string& why) {
  const std::string& mp = options_.cleanup_mountpoint;
  if (mp.empty()) {
    HOIST_LOG(kWarning) << name_ << ": giving up: " << why;
  } else if (::umount2(mp.c_str(), MNT_DETACH) == 0) {
    unmounted_ = true;
    HOIST_LOG(kWarning) << name_ << ": giving up: " << why << "; lazily unmounted " << mp;
  } else {
    const int err = errno;
    HOIST_LOG(kWarning) << name_ << ": giving up: " << why << "; unmounting " << mp
                        << " failed: " << std::strerror(err);
  }
  End(1);
}

// Idempotent: runs at the end of Run and again (doing nothing) in the destructor.
void Supervisor::Finish() {
  // The stored fds go first: with no worker left, that ends the FUSE connection, and a mount
  // still there is dead (ENOTCONN) and is unmounted rather than left hanging.
  if (finished_) return;
  finished_ = true;
  stored_.Clear();
  if (!unmounted_ && !options_.cleanup_mountpoint.empty()) {
    unmounted_ = UnmountIfDead(name_, options_.cleanup_mountpoint,
                               "the service ended (exit " + std::to_string(exit_code_.value_or(1)) +
                                   ") with its mount still there");
  }
  // The reaper guards against our sudden death; an orderly end has done its work already.
  reaper_.lifeline.Reset();
  if (reaper_.pid > 0) {
    (void)::kill(reaper_.pid, SIGKILL);
    while (::waitpid(reaper_.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    reaper_.pid = -1;
  }
  listener_.reset();
  signal_fd_.Reset();
  if (mask_saved_) {
    ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    mask_saved_ = false;
  }
}

}  // namespace

int RunSupervisor(const SupervisorOptions& options) {
  Supervisor supervisor(options);
  return supervisor.Run();
}

}  // namespace hoist
