// The worker tests/supervisor/supervisor_test.cc runs under RunSupervisor: a stand-in for
// hoistfs that speaks the worker's side of the protocol (tools/supervisor/worker_env.h,
// base/fd_store.h) and reports what it saw, one line per event appended to $TEST_REPORT:
//   start pid=P first=0|1 supervisor=S notify=0|1 previous=Q listen=N fdnames=a:b
//         content=gen0;gen1; pipe_ino=I ready_fd=0|1 lifeline=0|1 open=3,4
//   usr1 pid=P content=...      (then exits 0: an upgrade replaced it)
//   term pid=P                  (then exits 0: the service ended)
//   die|crash|fail-upgrade pid=P   (then exits 5|3|4 before READY=1)
// A first start creates a memfd holding "gen0;" and a pipe and stores them as "state"; a
// restart takes them back (LISTEN_FDS), appends "genN;" to the memfd and reports its content.
// What it does is driven by its environment:
//   TEST_DIE_BEFORE_READY=1   the first start stores its fds, then exits 5 before READY=1
//   TEST_CRASH_ON_RESTART=1   every restart exits 3 before READY=1
//   TEST_FAIL_UPGRADE_FILE=F  an upgrade (HOIST_PREVIOUS_PID set) exits 4 while F exists
//   TEST_NO_STORE=1           the first start stores nothing
//   TEST_FUSE_MOUNT=DIR       the first start also mounts a FUSE filesystem at DIR (never served)
//                             and stores its /dev/fuse fd with the others
// The "ready\n" line goes to HOIST_READY_FD after READY=1; the report line is written after
// READY=1 too, so a test that has seen it may kill the worker without racing the supervisor.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/fd_store.h"
#include "base/scoped_fd.h"
#include "base/sd_notify.h"
#include "tools/supervisor/worker_env.h"

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

void Report(const std::string& line) {
  const std::string path = Env("TEST_REPORT");
  if (path.empty()) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  ssize_t ignored = ::write(fd, text.data(), text.size());  // one write: lines never interleave
  (void)ignored;
  ::close(fd);
}

std::string Pid() { return "pid=" + std::to_string(::getpid()); }

// The fds above 2 open now, "3,4,5".
std::string OpenFds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "?";
  while (dirent* e = ::readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (e->d_name[0] != '.' && fd > 2 && fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string out;
  for (int fd : fds) out += (out.empty() ? "" : ",") + std::to_string(fd);
  return out.empty() ? "none" : out;
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  off_t offset = 0;
  while ((n = ::pread(fd, buf, sizeof(buf), offset)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return out;
}

int Fail(const std::string& what) {
  Report("error " + Pid() + " what=" + what);
  return 2;
}

}  // namespace

int main() {
  // Before anything else: the fds as the supervisor handed them over.
  const std::string open_fds = OpenFds();
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGUSR1);
  ::sigprocmask(SIG_BLOCK, &waited, nullptr);

  hoist::ScopedFd ready(hoist::InheritedFdFromEnv(hoist::kEnvReadyFd));
  hoist::ScopedFd lifeline(hoist::InheritedFdFromEnv(hoist::kEnvLifelineFd));
  const pid_t previous = hoist::InheritedPidFromEnv(hoist::kEnvPreviousPid);
  const std::string supervisor = Env(hoist::kEnvSupervisorPid);
  const bool notify = !Env("NOTIFY_SOCKET").empty() && Env("NOTIFY_SOCKET")[0] == '@';
  std::vector<hoist::ListenFd> listen = hoist::TakeListenFds();
  std::string names;
  for (const hoist::ListenFd& l : listen) names += (names.empty() ? "" : ":") + l.name;

  hoist::ScopedFd memfd;
  hoist::ScopedFd pipe_read;
  hoist::ScopedFd pipe_write;
  hoist::ScopedFd fuse;
  if (listen.empty()) {
    if (Env("TEST_NO_STORE").empty()) {
      memfd.Reset(::memfd_create("state", MFD_CLOEXEC));
      if (!memfd.valid() || ::pwrite(memfd.get(), "gen0;", 5, 0) != 5) return Fail("memfd");
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) return Fail("pipe");
      pipe_read.Reset(p[0]);
      pipe_write.Reset(p[1]);
      std::vector<int> fds = {memfd.get(), pipe_read.get(), pipe_write.get()};
      if (const std::string dir = Env("TEST_FUSE_MOUNT"); !dir.empty()) {
        fuse.Reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
        if (!fuse.valid()) return Fail("open-dev-fuse");
        const std::string options =
            "fd=" + std::to_string(fuse.get()) + ",rootmode=40000,user_id=0,group_id=0";
        if (::mount("hoist-test", dir.c_str(), "fuse", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
          return Fail("mount");
        fds.push_back(fuse.get());
      }
      if (hoist::Status s = hoist::StoreFds("state", fds); !s)
        return Fail("store:" + s.error().message());
    }
    if (!Env("TEST_DIE_BEFORE_READY").empty()) {
      Report("die " + Pid());
      return 5;
    }
  } else {
    if (!Env("TEST_CRASH_ON_RESTART").empty()) {
      Report("crash " + Pid());
      return 3;
    }
    const std::string fail_file = Env("TEST_FAIL_UPGRADE_FILE");
    if (previous > 0 && !fail_file.empty() && ::access(fail_file.c_str(), F_OK) == 0) {
      Report("fail-upgrade " + Pid());
      return 4;
    }
    if (listen.size() < 3) return Fail("listen-count");
    memfd = std::move(listen[0].fd);
    pipe_read = std::move(listen[1].fd);
    pipe_write = std::move(listen[2].fd);
    const std::string content = ReadAll(memfd.get());
    const long gen = std::count(content.begin(), content.end(), ';');
    const std::string add = "gen" + std::to_string(gen) + ";";
    if (::pwrite(memfd.get(), add.data(), add.size(), static_cast<off_t>(content.size())) !=
        static_cast<ssize_t>(add.size()))
      return Fail("append");
  }

  if (hoist::Status s = hoist::SdNotify("STATUS=serving\nREADY=1"); !s)
    return Fail("notify:" + s.error().message());
  struct stat pipe_stat {};
  if (pipe_read.valid()) (void)::fstat(pipe_read.get(), &pipe_stat);
  Report("start " + Pid() + " first=" + (listen.empty() ? "1" : "0") + " supervisor=" + supervisor +
         " notify=" + (notify ? "1" : "0") + " previous=" + std::to_string(previous) + " listen=" +
         std::to_string(listen.size()) + " fdnames=" + (names.empty() ? "none" : names) +
         " content=" + (memfd.valid() ? ReadAll(memfd.get()) : "none") + " pipe_ino=" +
         std::to_string(pipe_stat.st_ino) + " ready_fd=" + (ready.valid() ? "1" : "0") +
         " lifeline=" + (lifeline.valid() ? "1" : "0") + " open=" + open_fds);
  if (ready.valid()) {
    ssize_t ignored = ::write(ready.get(), "ready\n", 6);
    (void)ignored;
    ready.Reset();
  }

  while (true) {
    int sig = 0;
    if (::sigwait(&waited, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      Report("usr1 " + Pid() + " content=" + (memfd.valid() ? ReadAll(memfd.get()) : "none"));
      return 0;
    }
    Report("term " + Pid());
    return 0;
  }
}
