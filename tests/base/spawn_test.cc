// The spawner (base/spawn.h) with real programs: /bin/sh, /bin/true, cat, ls, env.
#include "base/spawn.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/process.h"
#include "tests/harness/wait.h"

namespace hoist {
namespace {

SpawnOptions Captured() {
  SpawnOptions o;
  o.stdin_to = Stdio::Null();
  o.stdout_to = Stdio::Capture();
  o.stderr_to = Stdio::Capture();
  return o;
}

RunResult MustRun(const std::vector<std::string>& argv, const SpawnOptions& spawn,
                  const RunOptions& run = {}) {
  auto r = RunAndCapture(argv, spawn, run);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *std::move(r) : RunResult{};
}

// The hex mask of a "SigBlk:\t..." / "SigIgn:\t..." line of /proc/self/status output.
uint64_t StatusMask(const std::string& status, const std::string& field) {
  const size_t at = status.find(field + ":\t");
  if (at == std::string::npos) return ~0ull;
  return std::strtoull(status.c_str() + at + field.size() + 2, nullptr, 16);
}

uint64_t SignalBit(int sig) { return 1ull << (sig - 1); }

TEST(Spawn, ExitCodes) {
  RunResult t = MustRun({"/bin/true"}, Captured());
  EXPECT_TRUE(t.status.ok());
  EXPECT_EQ(t.status.code, 0);
  EXPECT_EQ(t.status.signal, 0);
  RunResult seven = MustRun({"/bin/sh", "-c", "exit 7"}, Captured());
  EXPECT_FALSE(seven.status.ok());
  EXPECT_EQ(seven.status.code, 7);
  EXPECT_EQ(seven.status.ShellCode(), 7);
  EXPECT_EQ(seven.status.Describe(), "exit 7");
  EXPECT_FALSE(seven.timed_out);
  RunResult max = MustRun({"/bin/sh", "-c", "exit 255"}, Captured());
  EXPECT_EQ(max.status.code, 255);
}

TEST(Spawn, DeathBySignalIsNotAnExitCode) {
  RunResult r = MustRun({"/bin/sh", "-c", "kill -TERM $$"}, Captured());
  EXPECT_EQ(r.status.signal, SIGTERM);
  EXPECT_EQ(r.status.code, 0);
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.ShellCode(), 128 + SIGTERM);
  EXPECT_EQ(r.status.Describe(), "killed by signal 15");
}

TEST(Spawn, CapturesStdoutAndStderrApartAndExactly) {
  RunResult r =
      MustRun({"/bin/sh", "-c", "printf 'out\\000put' ; printf 'e\\001rr\\n\\n' >&2"}, Captured());
  EXPECT_EQ(r.stdout_text, std::string("out\0put", 7));
  EXPECT_EQ(r.stderr_text, "e\001rr\n\n");
  EXPECT_FALSE(r.stdout_truncated);
  EXPECT_FALSE(r.stderr_truncated);
}

TEST(Spawn, CaptureIsBoundedAndTheChildIsNotBlocked) {
  // 1 MiB on stderr (far over a pipe's 64 KiB) against a 10-byte cap: the first 10 bytes are
  // kept, the rest read and dropped, and the child finishes normally.
  RunResult r =
      MustRun({"/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\000' z >&2; echo done"},
              Captured(), {.max_capture = 10});
  EXPECT_EQ(r.stderr_text, "zzzzzzzzzz");
  EXPECT_TRUE(r.stderr_truncated);
  EXPECT_EQ(r.stdout_text, "done\n");
  EXPECT_FALSE(r.stdout_truncated);
  EXPECT_TRUE(r.status.ok()) << r.status.Describe();
}

TEST(Spawn, StdinPipeRoundTripsThroughCat) {
  std::string data;
  for (uint32_t i = 0; i < (1u << 20); ++i) data.push_back(static_cast<char>((i * 7919u) >> 3));
  SpawnOptions o = Captured();
  o.stdin_to = Stdio::Pipe();
  o.search_path = true;
  RunResult r = MustRun({"cat"}, o, {.stdin_data = data, .max_capture = 2 << 20});
  EXPECT_TRUE(r.status.ok()) << r.status.Describe();
  EXPECT_EQ(r.stdout_text.size(), data.size());
  EXPECT_TRUE(r.stdout_text == data);
}

TEST(Spawn, StdinPipeByHandWithSpawnAndWait) {
  SpawnOptions o;
  o.stdin_to = Stdio::Pipe();
  o.stdout_to = Stdio::Pipe();
  o.search_path = true;
  auto p = Spawn({"cat"}, o);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_GT(p->pid(), 0);
  EXPECT_EQ(p->program(), "cat");
  // cat waits for its stdin: still running.
  auto running = p->TryWait();
  ASSERT_TRUE(running) << running.error().message();
  EXPECT_FALSE(running->has_value());
  ASSERT_EQ(::write(p->stdin_pipe.get(), "hello\n", 6), 6);
  p->stdin_pipe.Reset();
  std::string out;
  char buf[64];
  ssize_t n;
  while ((n = ::read(p->stdout_pipe.get(), buf, sizeof buf)) > 0) out.append(buf, n);
  EXPECT_EQ(out, "hello\n");
  auto status = p->Wait();
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_TRUE(status->ok());
  EXPECT_EQ(p->pid(), -1);
}

TEST(Spawn, AChildThatDoesNotReadItsStdinIsNoSigpipeForUs) {
  SpawnOptions o = Captured();
  o.stdin_to = Stdio::Pipe();
  RunResult r = MustRun({"/bin/true"}, o, {.stdin_data = std::string(4 << 20, 'x')});
  EXPECT_TRUE(r.status.ok()) << r.status.Describe();
}

TEST(Spawn, MissingProgramIsOneLineErrorNamingIt) {
  auto abs = Spawn({"/nonexistent/hoist-no-such-program", "x"});
  ASSERT_FALSE(abs);
  EXPECT_EQ(abs.error().code(), ENOENT);
  EXPECT_EQ(abs.error().message(), "/nonexistent/hoist-no-such-program: No such file or directory");
  SpawnOptions o;
  o.search_path = true;
  auto in_path = Spawn({"hoist-no-such-program"}, o);
  ASSERT_FALSE(in_path);
  EXPECT_EQ(in_path.error().code(), ENOENT);
  EXPECT_EQ(in_path.error().message(), "hoist-no-such-program: No such file or directory");
  // Without search_path a bare name is a path relative to the working directory.
  auto no_search = RunAndCapture({"true"}, Captured());
  ASSERT_FALSE(no_search);
  EXPECT_EQ(no_search.error().message(), "true: No such file or directory");
  // Not executable.
  auto not_exec = Spawn({"/etc/passwd"});
  ASSERT_FALSE(not_exec);
  EXPECT_EQ(not_exec.error().code(), EACCES);
  EXPECT_EQ(not_exec.error().message(), "/etc/passwd: Permission denied");
  auto empty = Spawn({});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), EINVAL);
}

TEST(Spawn, NoDescriptorLeaksIntoTheChild) {
  // Descriptors of ours without close-on-exec (as a library might leave them).
  const int plain = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(plain, 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // ls lists its own descriptors: 0-2, and 3 is the directory it is reading.
  RunResult r = MustRun({"/bin/ls", "/proc/self/fd"}, Captured());
  EXPECT_EQ(r.stdout_text, "0\n1\n2\n3\n") << r.stderr_text;
  // And seen from outside, a running child holds exactly 0, 1 and 2.
  SpawnOptions o;
  o.stdin_to = Stdio::Pipe();
  o.stdout_to = Stdio::Null();
  o.search_path = true;
  auto cat = Spawn({"cat"}, o);
  ASSERT_TRUE(cat) << cat.error().message();
  auto listing = MustRun({"/bin/ls", "/proc/" + std::to_string(cat->pid()) + "/fd"}, Captured());
  EXPECT_EQ(listing.stdout_text, "0\n1\n2\n") << listing.stderr_text;
  cat->stdin_pipe.Reset();
  EXPECT_TRUE(cat->Wait().has_value());
  ::close(plain);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Spawn, StreamsToNullAndToAGivenDescriptor) {
  char tmpl[] = "/tmp/hoist-spawn-XXXXXX";
  const int file = ::mkstemp(tmpl);
  ASSERT_GE(file, 0);
  SpawnOptions o;
  o.stdin_to = Stdio::Null();
  o.stdout_to = Stdio::Fd(file);
  o.stderr_to = Stdio::Fd(file);
  auto r = RunAndCapture({"/bin/sh", "-c", "cat; echo to-out; echo to-err >&2"}, o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->status.ok());
  EXPECT_EQ(ReadFile(tmpl).value_or("?"), "to-out\nto-err\n");
  // The caller's descriptor stays open and its own.
  EXPECT_EQ(::write(file, "x", 1), 1);
  ::close(file);
  ::unlink(tmpl);

  // stdout to our stderr's descriptor (2) while stderr is a pipe: fd 2 means the caller's 2.
  int err_pipe[2];
  ASSERT_EQ(::pipe2(err_pipe, O_CLOEXEC), 0);
  const int saved = ::dup(2);
  ASSERT_EQ(::dup2(err_pipe[1], 2), 2);
  ::close(err_pipe[1]);
  SpawnOptions swap = Captured();
  swap.stdout_to = Stdio::Fd(2);
  auto s = RunAndCapture({"/bin/sh", "-c", "echo via-our-stderr; echo own >&2"}, swap);
  ASSERT_EQ(::dup2(saved, 2), 2);
  ::close(saved);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->stderr_text, "own\n");
  char buf[64] = {};
  EXPECT_EQ(::read(err_pipe[0], buf, sizeof buf - 1), 15);
  EXPECT_STREQ(buf, "via-our-stderr\n");
  ::close(err_pipe[0]);
}

TEST(Spawn, EnvironmentIsTheOneGiven) {
  SpawnOptions o = Captured();
  o.env = std::vector<std::string>{"A=1", "B=two words"};
  RunResult r = MustRun({"/usr/bin/env"}, o);
  EXPECT_EQ(r.stdout_text, "A=1\nB=two words\n");
  SpawnOptions inherit = Captured();
  ASSERT_EQ(::setenv("HOIST_SPAWN_TEST", "inherited", 1), 0);
  RunResult i = MustRun({"/bin/sh", "-c", "printf %s \"$HOIST_SPAWN_TEST\""}, inherit);
  ::unsetenv("HOIST_SPAWN_TEST");
  EXPECT_EQ(i.stdout_text, "inherited");
}

TEST(Spawn, SignalMaskIsEmptyOrTheOneGivenAndSigpipeIsDefault) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  struct sigaction ignore {
  }, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  RunResult plain = MustRun({"/bin/cat", "/proc/self/status"}, Captured());
  SpawnOptions given = Captured();
  given.signal_mask = block;
  RunResult masked = MustRun({"/bin/cat", "/proc/self/status"}, given);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(StatusMask(plain.stdout_text, "SigBlk"), 0u) << plain.stdout_text;
  EXPECT_EQ(StatusMask(plain.stdout_text, "SigIgn") & SignalBit(SIGPIPE), 0u);
  EXPECT_EQ(StatusMask(masked.stdout_text, "SigBlk"), SignalBit(SIGUSR1));
}

TEST(Spawn, NewProcessGroup) {
  SpawnOptions o;
  o.stdin_to = Stdio::Pipe();
  o.search_path = true;
  auto same = Spawn({"cat"}, o);
  ASSERT_TRUE(same) << same.error().message();
  EXPECT_EQ(::getpgid(same->pid()), ::getpgrp());
  o.new_process_group = true;
  auto own = Spawn({"cat"}, o);
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_EQ(::getpgid(own->pid()), own->pid());
  same->stdin_pipe.Reset();
  own->stdin_pipe.Reset();
  EXPECT_TRUE(same->Wait().has_value());
  EXPECT_TRUE(own->Wait().has_value());

  // A signal to the group reaches what the child started.
  SpawnOptions g;
  g.stdout_to = Stdio::Pipe();
  g.new_process_group = true;
  auto sh = Spawn({"/bin/sh", "-c", "sleep 1000 & echo $!; wait"}, g);
  ASSERT_TRUE(sh) << sh.error().message();
  std::string line;
  char c;
  while (::read(sh->stdout_pipe.get(), &c, 1) == 1 && c != '\n') line.push_back(c);
  const int64_t grandchild = std::atoll(line.c_str());
  ASSERT_GT(grandchild, 0) << line;
  EXPECT_EQ(::getpgid(static_cast<pid_t>(grandchild)), sh->pid());
  ASSERT_TRUE(sh->Signal(SIGKILL, /*group=*/true));
  auto st = sh->Wait();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->signal, SIGKILL);
  EXPECT_TRUE(harness::WaitUntil([&] { return !ProcessAlive(grandchild); }));
}

TEST(Spawn, TimeoutKillsTheChildAndItsGroup) {
  SpawnOptions o = Captured();
  o.new_process_group = true;
  // The grandchild keeps the stdout pipe open: Run must not wait for it.
  auto r = RunAndCapture({"/bin/sh", "-c", "sleep 1000 & sleep 1000"}, o,
                         {.timeout = std::chrono::milliseconds(100)});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->status.signal, SIGKILL);
  // Without pipes, the deadline is kept too.
  SpawnOptions quiet;
  quiet.stdin_to = Stdio::Null();
  auto q =
      RunAndCapture({"/bin/sleep", "1000"}, quiet, {.timeout = std::chrono::milliseconds(100)});
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_TRUE(q->timed_out);
  EXPECT_EQ(q->status.signal, SIGKILL);
  // A child that finishes in time is not marked.
  auto fast = RunAndCapture({"/bin/true"}, Captured(), {.timeout = std::chrono::seconds(60)});
  ASSERT_TRUE(fast);
  EXPECT_FALSE(fast->timed_out);
  EXPECT_TRUE(fast->status.ok());
}

TEST(Spawn, DroppingAProcessKillsAndReapsIt) {
  pid_t pid = -1;
  {
    SpawnOptions o;
    o.stdin_to = Stdio::Null();
    auto p = Spawn({"/bin/sleep", "1000"}, o);
    ASSERT_TRUE(p) << p.error().message();
    pid = p->pid();
    Process moved = std::move(*p);
    EXPECT_EQ(p->pid(), -1);
    EXPECT_EQ(moved.pid(), pid);
  }
  // Reaped: no such child any more (not even a zombie).
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Spawn, RunAndCaptureRefusesStreamsNobodyReads) {
  SpawnOptions o;
  o.stdout_to = Stdio::Pipe();
  auto r = RunAndCapture({"/bin/true"}, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  SpawnOptions no_pipe;
  auto d = RunAndCapture({"/bin/cat"}, no_pipe, {.stdin_data = "x"});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), EINVAL);
}

}  // namespace
}  // namespace hoist
