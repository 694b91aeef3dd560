#include "base/cleanup_on_signal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/mutex.h"

namespace hoist {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

struct Registry {
  Mutex mu;
  std::vector<std::string> paths HOIST_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* r = new Registry();  // never destroyed: the watcher may run at exit
  return *r;
}

int g_pipe_write = -1;

void OnSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_pipe_write, &b, 1);
  errno = saved;
}

void RemovePath(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(path.c_str());
    return;
  }
  // Other threads of the interrupted command may still be adding files: a few rounds.
  for (int round = 0; round < 20; ++round) {
    if (RemoveTree(path) && ::access(path.c_str(), F_OK) != 0) return;
  }
}

[[noreturn]] void Watch(int read_fd) {
  unsigned char sig = 0;
  while (true) {
    const ssize_t n = ::read(read_fd, &sig, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    // The pipe cannot close while the process lives; stop watching quietly if it does.
    while (true) ::pause();
  }
  Registry& r = TheRegistry();
  r.mu.Lock();  // held until the process ends: nothing is committed after the cleanup
  for (auto it = r.paths.rbegin(); it != r.paths.rend(); ++it) RemovePath(*it);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);  // not reached: the default action of these signals ends the process
}

}  // namespace

Status InstallSignalCleanup() {
  static std::once_flag once;
  static Status result = Ok();
  std::call_once(once, [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      result = Fail(ErrnoError("pipe for the signal cleanup"));
      return;
    }
    g_pipe_write = fds[1];
    std::thread(Watch, fds[0]).detach();
    for (int sig : kSignals) {
      struct sigaction sa {};
      sa.sa_handler = OnSignal;
      ::sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      if (::sigaction(sig, &sa, nullptr) != 0) {
        result = Fail(ErrnoError("sigaction"));
        return;
      }
    }
  });
  return result;
}

void RemoveOnSignal(const std::string& path) {
  Registry& r = TheRegistry();
  MutexLock lock(r.mu);
  r.paths.push_back(path);
}

void KeepOnSignal(const std::string& path) {
  Registry& r = TheRegistry();
  MutexLock lock(r.mu);
  auto it = std::find(r.paths.rbegin(), r.paths.rend(), path);
  if (it != r.paths.rend()) r.paths.erase(std::next(it).base());
}

Status RenameRegistered(const std::string& from, const std::string& to) {
  Registry& r = TheRegistry();
  MutexLock lock(r.mu);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return Fail(ErrnoError("renaming " + from + " to " + to));
  }
  auto it = std::find(r.paths.rbegin(), r.paths.rend(), from);
  if (it != r.paths.rend()) r.paths.erase(std::next(it).base());
  return Ok();
}

int SweepStale(const std::string& dir, std::string_view prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits == 0 || digits > 9) continue;
    if (digits < rest.size() && rest[digits] != '-' && rest[digits] != '.') continue;
    const pid_t pid =
        static_cast<pid_t>(std::strtol(std::string(rest.substr(0, digits)).c_str(), nullptr, 10));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    stale.push_back(dir + "/" + std::string(name));
  }
  ::closedir(d);
  for (const std::string& p : stale) RemovePath(p);
  return static_cast<int>(stale.size());
}

}  // namespace hoist
