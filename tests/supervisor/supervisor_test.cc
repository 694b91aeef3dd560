// tools/supervisor: the supervisor with real processes. Each test forks a supervisor
// (RunSupervisor in the child) over tests/supervisor/test_worker, which reports what it saw
// into a file; the tests wait on those reports and on process exits, never on time.
#include "tools/supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/log.h"
#include "base/mountinfo.h"
#include "base/scoped_fd.h"
#include "tests/harness/wait.h"
#include "tools/supervisor/stored_fds.h"
#include "tools/supervisor/worker_env.h"
#include "tools/supervisor/worker_spawn.h"

namespace hoist {
namespace {

using harness::WaitUntil;
using Event = std::map<std::string, std::string>;  // "event" -> start|usr1|..., then key=value

constexpr char kName[] = "suptest";

pid_t ToPid(const std::string& s) { return static_cast<pid_t>(std::atol(s.c_str())); }

// The exit status of `pid` (our child) once it has exited, within the deadline.
std::optional<int> WaitExit(pid_t pid) {
  std::optional<int> result;
  WaitUntil([&] {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) result = status;
    return r == pid || r < 0;
  });
  return result;
}

// True while `pid` exists, zombies included (a zombie of another parent still has /proc/PID).
bool Exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// The pid of `parent`'s child named `comm`, or 0.
pid_t ChildNamed(pid_t parent, const std::string& comm) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && stat.substr(open + 1, close - open - 1) == comm)
      return ToPid(stat.substr(0, open));
  }
  return 0;
}

// Whether `pid` still runs test_worker (and is not a stranger that got its pid since).
bool IsTestWorker(pid_t pid) {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", error);
  return !error && exe == HOIST_TEST_WORKER;
}

bool Mounted(const std::string& path) {
  Result<std::vector<std::string>> mounts = MountPointsUnder(path);
  return mounts && !mounts->empty();
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hoist-supervisor-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    report_ = dir_ + "/report";
    mountpoint_ = dir_ + "/mnt";
    ASSERT_EQ(::mkdir(mountpoint_.c_str(), 0755), 0);
  }

  void TearDown() override {
    for (pid_t pid : {supervisor_}) {
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) (void)::waitpid(pid, nullptr, 0);
    }
    for (const Event& e : Events()) {  // workers left behind by a failed test
      const pid_t pid = ToPid(e.at("pid"));
      if (e.at("event") == "start" && IsTestWorker(pid)) (void)::kill(pid, SIGKILL);
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (Mounted(mountpoint_)) (void)::umount2(mountpoint_.c_str(), MNT_DETACH);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Forks a supervisor over test_worker with `env` added for the workers.
  void Start(std::vector<std::string> env = {}, bool cleanup_mountpoint = false,
             int max_quick_failures = 3) {
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    SupervisorOptions options;
    options.worker_argv = {HOIST_TEST_WORKER};
    options.worker_env = std::move(env);
    options.worker_env.push_back("TEST_REPORT=" + report_);
    options.ready_fd = ready[1];
    options.name = kName;
    options.max_quick_failures = max_quick_failures;
    if (cleanup_mountpoint) options.cleanup_mountpoint = mountpoint_;
    supervisor_ = ::fork();
    ASSERT_GE(supervisor_, 0);
    if (supervisor_ == 0) {
      ::close(ready[0]);
      SetLogLevel(LogLevel::kInfo);
      _exit(RunSupervisor(options));
    }
    ::close(ready[1]);
    ready_.Reset(ready[0]);
  }

  // What the first worker wrote to the readiness pipe, up to its end (EOF).
  std::string ReadReady() {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + harness::kGenerousDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{ready_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(ready_.get(), buf, sizeof(buf));
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
    ADD_FAILURE() << "the readiness pipe did not end";
    return out;
  }

  std::vector<Event> Events() const {
    std::vector<Event> out;
    std::ifstream in(report_);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      Event e;
      std::string word;
      words >> word;
      e["event"] = word;
      while (words >> word) {
        const size_t eq = word.find('=');
        if (eq != std::string::npos) e[word.substr(0, eq)] = word.substr(eq + 1);
      }
      out.push_back(std::move(e));
    }
    return out;
  }

  std::vector<Event> EventsOf(const std::string& kind) const {
    std::vector<Event> out;
    for (Event& e : Events())
      if (e["event"] == kind) out.push_back(std::move(e));
    return out;
  }

  // The `n`th (from 1) event of `kind`, once it is there.
  Event WaitForEvent(const std::string& kind, size_t n = 1) {
    std::vector<Event> found;
    const bool ok = WaitUntil([&] {
      found = EventsOf(kind);
      return found.size() >= n;
    });
    if (!ok) {
      std::ifstream in(report_);
      std::stringstream text;
      text << in.rdbuf();
      ADD_FAILURE() << "no " << kind << " event #" << n << "; the report:\n" << text.str();
      return Event{{"event", "none"}, {"pid", "0"}};
    }
    return found[n - 1];
  }

  // The supervisor's exit code (-1 if it did not exit normally within the deadline).
  int SupervisorExitCode() {
    const std::optional<int> status = WaitExit(supervisor_);
    if (!status) return -1;
    supervisor_ = -1;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  }

  std::string dir_;
  std::string report_;
  std::string mountpoint_;
  pid_t supervisor_ = -1;
  ScopedFd ready_;
};

TEST_F(SupervisorTest, FirstStartSignalsReadyWithTheProtocolEnvironment) {
  Start();
  EXPECT_EQ(ReadReady(), "ready\n");
  Event start = WaitForEvent("start");
  EXPECT_EQ(start["first"], "1");
  EXPECT_EQ(start["notify"], "1");
  EXPECT_EQ(start["supervisor"], std::to_string(supervisor_));
  EXPECT_EQ(start["previous"], "0");
  EXPECT_EQ(start["listen"], "0");
  EXPECT_EQ(start["ready_fd"], "1");
  EXPECT_EQ(start["lifeline"], "1");
  EXPECT_EQ(start["open"], "3,4");  // the readiness pipe and the lifeline, nothing else
  EXPECT_EQ(start["content"], "gen0;");
  ASSERT_EQ(::kill(supervisor_, SIGTERM), 0);
  EXPECT_EQ(SupervisorExitCode(), 0);
}

TEST_F(SupervisorTest, KilledWorkerRestartsWithTheSameStoredFds) {
  Start();
  ASSERT_EQ(ReadReady(), "ready\n");
  Event first = WaitForEvent("start");
  std::string expected = "gen0;";
  pid_t pid = ToPid(first["pid"]);
  for (int gen = 1; gen <= 3; ++gen) {
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    Event next = WaitForEvent("start", static_cast<size_t>(gen) + 1);
    expected += "gen" + std::to_string(gen) + ";";
    EXPECT_NE(ToPid(next["pid"]), pid);
    EXPECT_EQ(next["first"], "0");
    EXPECT_EQ(next["listen"], "3");
    EXPECT_EQ(next["fdnames"], "state:state:state");
    EXPECT_EQ(next["content"], expected);  // the very memfd the first worker wrote
    EXPECT_EQ(next["pipe_ino"], first["pipe_ino"]);
    EXPECT_EQ(next["ready_fd"], "0");
    EXPECT_EQ(next["lifeline"], "1");
    EXPECT_EQ(next["open"], "3,4,5,6");  // three stored fds and the lifeline
    EXPECT_EQ(next["supervisor"], std::to_string(supervisor_));
    pid = ToPid(next["pid"]);
  }
  ASSERT_EQ(::kill(supervisor_, SIGTERM), 0);
  EXPECT_EQ(SupervisorExitCode(), 0);
  EXPECT_EQ(EventsOf("term").size(), 1u);
}

TEST_F(SupervisorTest, WorkerExitingZeroEndsTheService) {
  Start();
  ASSERT_EQ(ReadReady(), "ready\n");
  const pid_t worker = ToPid(WaitForEvent("start")["pid"]);
  ASSERT_EQ(::kill(worker, SIGTERM), 0);  // the test worker exits 0 on SIGTERM
  EXPECT_EQ(SupervisorExitCode(), 0);
  EXPECT_EQ(EventsOf("start").size(), 1u);  // not restarted
}

TEST_F(SupervisorTest, TerminationSignalsAreForwardedToTheWorker) {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    SCOPED_TRACE(strsignal(sig));
    std::filesystem::remove(report_);
    Start();
    ASSERT_EQ(ReadReady(), "ready\n");
    const std::string worker = WaitForEvent("start")["pid"];
    ASSERT_EQ(::kill(supervisor_, sig), 0);
    EXPECT_EQ(SupervisorExitCode(), 0);
    EXPECT_EQ(WaitForEvent("term")["pid"], worker);
  }
}

TEST_F(SupervisorTest, CrashLoopGivesUpAndUnmounts) {
  ASSERT_EQ(::mount("tmpfs", mountpoint_.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  Start({"TEST_CRASH_ON_RESTART=1"}, /*cleanup_mountpoint=*/true, /*max_quick_failures=*/3);
  ASSERT_EQ(ReadReady(), "ready\n");
  ASSERT_EQ(::kill(ToPid(WaitForEvent("start")["pid"]), SIGKILL), 0);
  EXPECT_EQ(SupervisorExitCode(), 1);
  EXPECT_EQ(EventsOf("crash").size(), 3u);
  EXPECT_FALSE(Mounted(mountpoint_));
}

TEST_F(SupervisorTest, NothingStoredMeansNothingToRestart) {
  Start({"TEST_NO_STORE=1"});
  ASSERT_EQ(ReadReady(), "ready\n");
  ASSERT_EQ(::kill(ToPid(WaitForEvent("start")["pid"]), SIGKILL), 0);
  EXPECT_EQ(SupervisorExitCode(), 1);
  EXPECT_EQ(EventsOf("start").size(), 1u);
}

TEST_F(SupervisorTest, FirstWorkerDyingBeforeReadyIsNotRestarted) {
  Start({"TEST_DIE_BEFORE_READY=1"});
  EXPECT_EQ(ReadReady(), "");  // EOF: the parent learns the daemon died
  EXPECT_EQ(SupervisorExitCode(), 5);
  EXPECT_EQ(EventsOf("die").size(), 1u);
  EXPECT_EQ(EventsOf("start").size(), 0u);
}

TEST_F(SupervisorTest, UpgradeHandsOverTheFdsThenDrainsTheOldWorker) {
  Start();
  ASSERT_EQ(ReadReady(), "ready\n");
  const std::string old_pid = WaitForEvent("start")["pid"];
  ASSERT_EQ(::kill(supervisor_, SIGUSR2), 0);
  Event next = WaitForEvent("start", 2);
  EXPECT_EQ(next["previous"], old_pid);
  EXPECT_EQ(next["fdnames"], "state:state:state");
  EXPECT_EQ(next["content"], "gen0;gen1;");
  Event usr1 = WaitForEvent("usr1");
  EXPECT_EQ(usr1["pid"], old_pid);
  // SIGUSR1 came after the new worker took over: the old one sees its write in the memfd.
  EXPECT_EQ(usr1["content"], "gen0;gen1;");
  EXPECT_TRUE(WaitUntil([&] { return !Exists(ToPid(old_pid)); }));  // exited 0, reaped
  int status = 0;
  EXPECT_EQ(::waitpid(supervisor_, &status, WNOHANG), 0);  // still supervising
  // The new worker is the one now restarted on a crash.
  ASSERT_EQ(::kill(ToPid(next["pid"]), SIGKILL), 0);
  EXPECT_EQ(WaitForEvent("start", 3)["content"], "gen0;gen1;gen2;");
  ASSERT_EQ(::kill(supervisor_, SIGTERM), 0);
  EXPECT_EQ(SupervisorExitCode(), 0);
}

TEST_F(SupervisorTest, FailedUpgradeKeepsTheOldWorkerServing) {
  const std::string fail_file = dir_ + "/fail-upgrade";
  std::ofstream(fail_file) << "x";
  Start({"TEST_FAIL_UPGRADE_FILE=" + fail_file});
  ASSERT_EQ(ReadReady(), "ready\n");
  const std::string old_pid = WaitForEvent("start")["pid"];
  ASSERT_EQ(::kill(supervisor_, SIGUSR2), 0);
  const pid_t failed = ToPid(WaitForEvent("fail-upgrade")["pid"]);
  EXPECT_TRUE(WaitUntil([&] { return !Exists(failed); }));  // reaped by the supervisor
  EXPECT_TRUE(Exists(ToPid(old_pid)));
  EXPECT_TRUE(EventsOf("usr1").empty());
  // The next upgrade, with a working binary, goes through.
  std::filesystem::remove(fail_file);
  ASSERT_EQ(::kill(supervisor_, SIGUSR2), 0);
  EXPECT_EQ(WaitForEvent("start", 2)["previous"], old_pid);
  EXPECT_EQ(WaitForEvent("usr1")["pid"], old_pid);
  ASSERT_EQ(::kill(supervisor_, SIGTERM), 0);
  EXPECT_EQ(SupervisorExitCode(), 0);
}

// With the supervisor killed, the lifeline is still held by the worker; with both killed the
// reaper finds the mount healthy (a tmpfs) and leaves quietly.
TEST_F(SupervisorTest, ReaperLeavesAHealthyMountAlone) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come back to us to be reaped
  ASSERT_EQ(::mount("tmpfs", mountpoint_.c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  Start({}, /*cleanup_mountpoint=*/true);
  ASSERT_EQ(ReadReady(), "ready\n");
  const pid_t worker = ToPid(WaitForEvent("start")["pid"]);
  pid_t reaper = 0;
  ASSERT_TRUE(WaitUntil([&] { return (reaper = ChildNamed(supervisor_, "suptest-reaper")) > 0; }));
  ASSERT_EQ(::kill(supervisor_, SIGKILL), 0);
  ASSERT_TRUE(WaitExit(supervisor_));
  supervisor_ = -1;
  int status = 0;
  EXPECT_EQ(::waitpid(reaper, &status, WNOHANG), 0);  // the worker still holds the lifeline
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  EXPECT_TRUE(WaitExit(worker));
  const std::optional<int> reaped = WaitExit(reaper);
  ASSERT_TRUE(reaped);
  EXPECT_TRUE(WIFEXITED(*reaped) && WEXITSTATUS(*reaped) == 0);
  EXPECT_TRUE(Mounted(mountpoint_));
}

// A real dead FUSE mount: the worker mounts /dev/fuse and stores the connection's fd; killing
// the supervisor and the worker closes its last copies (ENOTCONN), which the reaper unmounts.
TEST_F(SupervisorTest, ReaperUnmountsADeadFuseMount) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  Start({"TEST_FUSE_MOUNT=" + mountpoint_}, /*cleanup_mountpoint=*/true);
  ASSERT_EQ(ReadReady(), "ready\n");
  const pid_t worker = ToPid(WaitForEvent("start")["pid"]);
  ASSERT_TRUE(Mounted(mountpoint_));
  pid_t reaper = 0;
  ASSERT_TRUE(WaitUntil([&] { return (reaper = ChildNamed(supervisor_, "suptest-reaper")) > 0; }));
  ASSERT_EQ(::kill(supervisor_, SIGKILL), 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(WaitExit(supervisor_));
  supervisor_ = -1;
  EXPECT_TRUE(WaitExit(worker));
  EXPECT_TRUE(WaitExit(reaper));
  EXPECT_FALSE(Mounted(mountpoint_));
}

// The supervisor's own end: the worker exits 0 without unmounting; once the supervisor closes
// the stored fds the mount is dead, and it unmounts it rather than leave it hanging.
TEST_F(SupervisorTest, SupervisorUnmountsAMountLeftDeadAtItsEnd) {
  Start({"TEST_FUSE_MOUNT=" + mountpoint_}, /*cleanup_mountpoint=*/true);
  ASSERT_EQ(ReadReady(), "ready\n");
  WaitForEvent("start");
  ASSERT_TRUE(Mounted(mountpoint_));
  ASSERT_EQ(::kill(supervisor_, SIGTERM), 0);
  EXPECT_EQ(SupervisorExitCode(), 0);
  EXPECT_FALSE(Mounted(mountpoint_));
}

TEST(SupervisorStoredFdsTest, ReplacesRemovesAndCaps) {
  auto fds = [](int n) {
    std::vector<ScopedFd> out;
    for (int i = 0; i < n; ++i) out.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return out;
  };
  StoredFds store(4);
  EXPECT_TRUE(store.empty());
  ASSERT_TRUE(store.Put("a", fds(2)));
  ASSERT_TRUE(store.Put("b", fds(1)));
  EXPECT_EQ(store.Names(), (std::vector<std::string>{"a", "a", "b"}));
  ASSERT_TRUE(store.Put("a", fds(1)));  // replaced in place
  EXPECT_EQ(store.Names(), (std::vector<std::string>{"a", "b"}));
  Status too_many = store.Put("c", fds(3));
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().code(), E2BIG);
  EXPECT_EQ(store.Count(), 2u);
  EXPECT_FALSE(store.Put("bad name", fds(1)));
  EXPECT_TRUE(store.Remove("a"));
  EXPECT_FALSE(store.Remove("a"));
  EXPECT_EQ(store.Fds().size(), 1u);
  ASSERT_TRUE(store.Put("b", {}));  // nothing under a name: the name goes
  EXPECT_TRUE(store.empty());
}

TEST(SupervisorWorkerEnvironmentTest, DropsInheritedProtocolVariablesAndApplies) {
  const std::vector<std::string> env =
      WorkerEnvironment({"PATH=/bin", "LISTEN_FDS=2", "LISTEN_PID=1", "NOTIFY_SOCKET=/run/x",
                         "HOIST_READY_FD=9", "KEEP=1", "OVER=old"},
                        {"OVER=new", "NOTIFY_SOCKET=@mine"});
  EXPECT_EQ(env,
            (std::vector<std::string>{"PATH=/bin", "KEEP=1", "OVER=new", "NOTIFY_SOCKET=@mine"}));
}

TEST(SupervisorInheritedFdTest, TakesTheFdCloseOnExecAndUnsetsTheVariable) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ScopedFd read_end(p[0]);
  ScopedFd write_end(p[1]);
  ASSERT_EQ(::setenv(kEnvLifelineFd, std::to_string(p[1]).c_str(), 1), 0);
  EXPECT_EQ(InheritedFdFromEnv(kEnvLifelineFd), p[1]);
  EXPECT_EQ(std::getenv(kEnvLifelineFd), nullptr);
  EXPECT_TRUE(::fcntl(p[1], F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(InheritedFdFromEnv(kEnvLifelineFd), -1);  // unset now
  ASSERT_EQ(::setenv(kEnvReadyFd, "12x", 1), 0);
  EXPECT_EQ(InheritedFdFromEnv(kEnvReadyFd), -1);
  ASSERT_EQ(::setenv(kEnvReadyFd, "1000", 1), 0);  // not open
  EXPECT_EQ(InheritedFdFromEnv(kEnvReadyFd), -1);
  ASSERT_EQ(::setenv(kEnvPreviousPid, "1234", 1), 0);
  EXPECT_EQ(InheritedPidFromEnv(kEnvPreviousPid), 1234);
  EXPECT_EQ(std::getenv(kEnvPreviousPid), nullptr);
}

TEST(SupervisorSpawnWorkerTest, AMissingBinaryIsAnErrorValue) {
  WorkerSpec spec;
  spec.argv = {"/nonexistent/hoistfs"};
  Result<pid_t> pid = SpawnWorker(spec);
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code(), ENOENT);
  EXPECT_NE(pid.error().message().find("/nonexistent/hoistfs"), std::string::npos);
}

}  // namespace
}  // namespace hoist
