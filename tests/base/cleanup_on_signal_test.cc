// base/cleanup_on_signal.h in real processes: a forked child registers paths, gets a real signal,
// and the parent checks what is left and how the child ended.
#include "base/cleanup_on_signal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "base/file_util.h"

namespace hoist {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class CleanupOnSignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/hoist-cleanup-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  // The pid of a process that has exited and been reaped.
  static pid_t DeadPid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
  }

  std::string dir_;
};

// The child registers a file and a directory tree, keeps a third path, commits a fourth with
// RenameRegistered, tells the parent it is ready, and waits for the signal.
void RunChildAndSignal(const std::string& dir, int sig) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(ready[0]);
    if (!InstallSignalCleanup()) ::_exit(90);
    auto touch = [](const std::string& p) {
      int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) ::_exit(91);
      ::close(fd);
    };
    RemoveOnSignal(dir + "/temp");
    touch(dir + "/temp");
    RemoveOnSignal(dir + "/tree");
    if (!MakeDirs(dir + "/tree/a/b")) ::_exit(92);
    touch(dir + "/tree/a/b/file");
    RemoveOnSignal(dir + "/kept");
    touch(dir + "/kept");
    KeepOnSignal(dir + "/kept");
    RemoveOnSignal(dir + "/part");
    touch(dir + "/part");
    if (!RenameRegistered(dir + "/part", dir + "/final")) ::_exit(93);
    if (::write(ready[1], "r", 1) != 1) ::_exit(94);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(::kill(pid, sig), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), sig);
}

TEST_F(CleanupOnSignalTest, RemovesRegisteredPathsThenDiesOfTheSignal) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    SCOPED_TRACE(sig);
    const std::string d = dir_ + "/" + std::to_string(sig);
    ASSERT_TRUE(MakeDirs(d));
    RunChildAndSignal(d, sig);
    EXPECT_FALSE(Exists(d + "/temp"));
    EXPECT_FALSE(Exists(d + "/tree"));
    EXPECT_FALSE(Exists(d + "/part"));
    EXPECT_TRUE(Exists(d + "/kept"));
    EXPECT_TRUE(Exists(d + "/final"));
  }
}

TEST_F(CleanupOnSignalTest, SweepRemovesOnlyDeadProcessesEntries) {
  const pid_t dead = DeadPid();
  const std::string live = std::to_string(::getppid());
  const std::string mine = std::to_string(::getpid());
  const std::string gone = std::to_string(dead);
  for (const std::string& name :
       {"out.tar.tmp-" + gone, "out.tar.tmp-" + live, "out.tar.tmp-" + mine, "out.tar.tmp-x" + gone,
        "other.tmp-" + gone, "out.tar.tmp-" + gone + "abc"}) {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/" + name, "x"));
  }
  ASSERT_TRUE(MakeDirs(dir_ + "/hoist-convert-" + gone + "-Ab12/layer"));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/hoist-convert-" + gone + "-Ab12/layer/f", "x"));
  ASSERT_TRUE(MakeDirs(dir_ + "/hoist-convert-" + live + "-Zz99"));

  EXPECT_EQ(SweepStale(dir_, "out.tar.tmp-"), 1);
  EXPECT_EQ(SweepStale(dir_, "hoist-convert-"), 1);
  EXPECT_FALSE(Exists(dir_ + "/out.tar.tmp-" + gone));
  EXPECT_FALSE(Exists(dir_ + "/hoist-convert-" + gone + "-Ab12"));
  // A live process's (the parent), this process's, and names that are not PREFIX<pid>.
  EXPECT_TRUE(Exists(dir_ + "/out.tar.tmp-" + live));
  EXPECT_TRUE(Exists(dir_ + "/out.tar.tmp-" + mine));
  EXPECT_TRUE(Exists(dir_ + "/out.tar.tmp-x" + gone));
  EXPECT_TRUE(Exists(dir_ + "/other.tmp-" + gone));
  EXPECT_TRUE(Exists(dir_ + "/out.tar.tmp-" + gone + "abc"));
  EXPECT_TRUE(Exists(dir_ + "/hoist-convert-" + live + "-Zz99"));
}

TEST_F(CleanupOnSignalTest, ScratchDirCarriesThePidAndSweepsDeadOnes) {
  const std::string gone = std::to_string(DeadPid());
  ASSERT_TRUE(MakeDirs(dir_ + "/hoist-convert-" + gone + "-old111/x"));
  std::string path;
  {
    ScratchDir s;
    ASSERT_TRUE(s.Create(dir_, "hoist-convert"));
    path = s.path();
    EXPECT_EQ(path.rfind(dir_ + "/hoist-convert-" + std::to_string(::getpid()) + "-", 0), 0u)
        << path;
    EXPECT_FALSE(Exists(dir_ + "/hoist-convert-" + gone + "-old111"));
  }
  EXPECT_FALSE(Exists(path));
}

}  // namespace
}  // namespace hoist
