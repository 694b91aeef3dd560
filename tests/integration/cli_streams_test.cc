// Issue 19 items 3, 4 and 10 against a REAL registry (TestRegistry), REAL skopeo, the real hoist
// binary, real signals, real pipes and a real pseudo-terminal:
//
//   SaveToStdoutPipesIntoLoad      `hoist save IMG | hoist load` loads the image (same digest);
//                                  `hoist save | podman load` (private store); an oci-archive on
//                                  stdout read by skopeo; `load -i FIFO`;
//                                  save to a terminal is refused with one line.
//   LoadFromAPipeKeepsMemoryBounded  a 100 MB docker-archive through a pipe: the peak RSS of
//                                  `hoist load` (/usr/bin/time) is far below the archive size.
//   SaveInterruptedLeavesNothing   SIGINT / SIGTERM in the middle of a save: FILE.tmp-PID is
//                                  gone, the process died of that signal; a dead run's
//                                  FILE.tmp-PID is swept by the next save, a live one's is kept.
//   ConvertInterruptedLeavesNoScratch  the same for convert's --work-dir scratch directory.
//   LoadInterruptedLeavesNoBlobs   the same for load: no blob file, no scratch file, no image.
//   CopyAndPushInterruptedLeaveNothing  the same for copy into a new dir:/oci: layout (its
//                                  temporary sibling), push and inspect of rootfs: (its
//                                  spooled layer);
//                                  a killed copy's temporary layout is swept by the next one.
//   PullKilledResumesFromItsBlobs  a pull interrupted after its first layer: the re-run GETs only
//                                  the other layers' blobs (registry log).
//   PullProgressOnATerminal        a pull in a pseudo-terminal: one line per layer, at most ~10
//                                  frames per second of wall time; not on a terminal: no
//                                  progress; -q: nothing; --json: start/done/pulled events.
//   PushAndSaveProgressAndQuiet    push, save and load draw per-blob lines on a terminal, -q
//                                  silences them.
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/registry_image_suite.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::CommandOptions;
using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;
using harness::RunHoist;

constexpr uint64_t kLayerBytes = 36ull << 20;  // three of them: ~108 MB of random data

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every regular file under `dir`, recursively (relative paths).
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) out.push_back(it->path().string().substr(dir.size() + 1));
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t FileSize(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

pid_t DeadPid() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

CommandResult Shell(const std::string& script,
                    std::chrono::seconds timeout = std::chrono::seconds(300)) {
  CommandOptions o;
  o.timeout = timeout;
  return harness::RunForResult({"bash", "-c", "set -o pipefail; " + script}, o);
}

// What a run in a pseudo-terminal wrote, and how long it took.
struct PtyRun {
  std::string output;
  int status = -1;
  double seconds = 0;
};

// Runs hoist with `args` on a pseudo-terminal (raw: no "\n" -> "\r\n"), 200 columns.
PtyRun RunInPty(const std::vector<std::string>& args) {
  PtyRun run;
  winsize ws{};
  ws.ws_col = 200;
  ws.ws_row = 50;
  int master = -1;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) return run;
  if (pid == 0) {
    termios t{};
    ::tcgetattr(0, &t);
    ::cfmakeraw(&t);
    ::tcsetattr(0, TCSANOW, &t);
    std::vector<char*> argv;
    std::string bin = HOIST_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(master, buf, sizeof(buf));
    if (n > 0) {
      run.output.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EIO: the child side closed
  }
  while (::waitpid(pid, &run.status, 0) < 0 && errno == EINTR) {
  }
  ::close(master);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

std::vector<rapidjson::Document> JsonLines(const std::string& text) {
  std::vector<rapidjson::Document> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    rapidjson::Document d;
    d.Parse(text.c_str() + pos, nl - pos);
    EXPECT_FALSE(d.HasParseError()) << text.substr(pos, nl - pos);
    out.push_back(std::move(d));
    pos = nl + 1;
  }
  return out;
}

class CliStreamsTest : public harness::RegistryImageSuite<CliStreamsTest> {
 protected:
  static void SetUpTestSuite() {
    // Three gzip layers of random (incompressible) data, and a small one.
    (void)SetUpSuite({
        .programs = {"skopeo", "podman", "docker-registry", "gzip", "tar", "bash", "cat", "mkfifo",
                     "/usr/bin/time"},
        .work_template = "/var/tmp/hoist-cli-streams-XXXXXX",
        .layers =
            {
                {FileSpec::File("etc/hello", "hello\n")},
                {FileSpec::BigFile("data/one", kLayerBytes, 11)},
                {FileSpec::BigFile("data/two", kLayerBytes, 12)},
                {FileSpec::BigFile("data/three", kLayerBytes, 13)},
            },
        .repo = "streams/big",
    });
  }

  static std::string Hoist() { return HOIST_BINARY; }

  // Starts hoist in the background (stdout/stderr to files in `dir`).
  harness::ChildProcess Start(const std::vector<std::string>& args, const std::string& dir,
                              const std::vector<std::string>& env = {}) {
    harness::ChildProcess::Options o;
    o.stdout_path = dir + "/stdout";
    o.stderr_path = dir + "/stderr";
    o.env = env;
    std::vector<std::string> argv = {Hoist()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = harness::ChildProcess::Start(argv, o);
    EXPECT_TRUE(child.has_value()) << child.error().message();
    return child ? std::move(*child) : harness::ChildProcess();
  }

  // Sends `sig`, waits for the end, and checks the process died of it.
  static void InterruptAndExpectDeath(harness::ChildProcess& child, int sig) {
    ASSERT_EQ(::kill(child.pid(), sig), 0);
    ASSERT_TRUE(
        harness::WaitUntil([&] { return !child.Running(); }, std::chrono::milliseconds(60000)));
    ASSERT_TRUE(child.wait_status().has_value());
    const int status = *child.wait_status();
    ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
    EXPECT_EQ(WTERMSIG(status), sig);
  }
};

TEST_F(CliStreamsTest, SaveToStdoutPipesIntoLoad) {
  const std::string dir = NewDir("pipe");
  const std::string cache = dir + "/cache";
  // docker save | docker load, hoist's way: no file in between.
  CommandResult r =
      Shell("'" + Hoist() + "' save -q " + Ref() + " | '" + Hoist() + "' load --cache=" + cache);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  // A docker-archive gets a Docker v2 manifest of its own (uncompressed layers), same config.
  EXPECT_EQ(r.stdout_text.rfind("Loaded image: " + Ref() + " sha256:", 0), 0u) << r.stdout_text;
  EXPECT_EQ(r.stderr_text, "");
  EXPECT_EQ(Entries(dir), std::vector<std::string>{"cache"});  // no file named "-"
  r = RunHoist({"inspect", "--local", "--config", "--cache=" + cache, Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, image_->config);

  // `hoist save | podman load` (a private podman store; podman wants a short runroot): podman
  // reads the pipe and keeps the image's config.
  char podman_dir[] = "/tmp/hoist-pm-XXXXXX";
  ASSERT_NE(::mkdtemp(podman_dir), nullptr);
  const std::string podman = std::string("podman --root ") + podman_dir + "/root --runroot " +
                             podman_dir + "/run --storage-driver vfs ";
  r = Shell("'" + Hoist() + "' save -q " + Ref() + " | " + podman + "load && " + podman +
            "image inspect --format '{{.Id}}' " + Ref());
  (void)harness::RunForResult({"sh", "-c", podman + "rmi -a -f >/dev/null 2>&1"});
  (void)RemoveTree(podman_dir);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find(std::string(image_->config_digest.hex()) + "\n"), std::string::npos)
      << r.stdout_text;

  // `save -o -` (oci-archive) to stdout, read by skopeo.
  CommandOptions o;
  o.stdout_path = dir + "/out-oci.tar";
  o.timeout = std::chrono::seconds(300);
  r = harness::RunForResult({Hoist(), "save", "-q", "--format", "oci-archive", "-o", "-", Ref()},
                            o);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  auto inspect = harness::RunChecked({"skopeo", "inspect", "oci-archive:" + dir + "/out-oci.tar"});
  ASSERT_TRUE(inspect.has_value()) << inspect.error().message();
  rapidjson::Document d;
  d.Parse(inspect->c_str());
  ASSERT_TRUE(d.IsObject()) << *inspect;
  EXPECT_EQ(std::string(d["Digest"].GetString()), image_->manifest_digest.str());

  // load -i FIFO: read once, in order, never seeked.
  ASSERT_TRUE(harness::RunChecked({"mkfifo", dir + "/fifo"}).has_value());
  r = Shell("cat '" + dir + "/out-oci.tar' > '" + dir + "/fifo' & '" + Hoist() +
            "' load --cache=" + dir + "/cache2 -i '" + dir + "/fifo'; rc=$?; wait; exit $rc");
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Loaded image: " + Ref() + " " + image_->manifest_digest.str() + "\n");

  // docker's rule: no archive to a terminal, and no archive from one.
  PtyRun tty = RunInPty({"save", Ref()});
  ASSERT_TRUE(WIFEXITED(tty.status));
  EXPECT_EQ(WEXITSTATUS(tty.status), 1);
  EXPECT_EQ(tty.output,
            "hoist save: refusing to write an archive to a terminal; use -o FILE or redirect "
            "stdout\n");
  tty = RunInPty({"load", "--cache=" + dir + "/cache3"});
  ASSERT_TRUE(WIFEXITED(tty.status));
  EXPECT_EQ(WEXITSTATUS(tty.status), 1);
  EXPECT_EQ(tty.output,
            "hoist load: refusing to read an archive from a terminal; use -i FILE or redirect "
            "stdin\n");
  // An empty pipe: one line, exit 1.
  r = Shell("'" + Hoist() + "' load --cache=" + dir + "/cache4 < /dev/null");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stderr_text, "hoist load: stdin is empty (no archive)\n");
}

TEST_F(CliStreamsTest, LoadFromAPipeKeepsMemoryBounded) {
  const std::string dir = NewDir("rss");
  const std::string archive = dir + "/big.tar";
  CommandResult r = RunHoist({"save", "-q", "-o", archive, Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  const uint64_t size = FileSize(archive);
  ASSERT_GT(size, 3 * kLayerBytes);
  // Peak RSS of `hoist load` reading `input` from a pipe. The sanitizer build's quarantine of
  // freed memory is made small, so the figure is the program's own use; the baseline is the same
  // command given an empty stream (start-up, the sanitizer runtime, the store).
  auto peak_rss = [&](const std::string& input, const std::string& cache,
                      CommandResult* out) -> uint64_t {
    *out = Shell("cat " + input +
                 " | ASAN_OPTIONS=quarantine_size_mb=1 /usr/bin/time -f "
                 "'maxrss_kb=%M' '" +
                 Hoist() + "' load --cache=" + cache);
    const size_t at = out->stderr_text.rfind("maxrss_kb=");
    EXPECT_NE(at, std::string::npos) << out->stderr_text;
    if (at == std::string::npos) return 0;
    return static_cast<uint64_t>(std::strtoull(out->stderr_text.c_str() + at + 10, nullptr, 10)) *
           1024;
  };
  CommandResult base_run;
  const uint64_t base = peak_rss("/dev/null", dir + "/cache0", &base_run);
  EXPECT_EQ(base_run.exit_code, 1);
  const uint64_t rss = peak_rss("'" + archive + "'", dir + "/cache", &r);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text.rfind("Loaded image: " + Ref() + " sha256:", 0), 0u) << r.stdout_text;
  std::printf("load from a pipe: archive %llu bytes, peak RSS %llu bytes (%llu for none)\n",
              static_cast<unsigned long long>(size), static_cast<unsigned long long>(rss),
              static_cast<unsigned long long>(base));
  // The archive held in memory would add > 108 MB; streaming adds a few buffers.
  EXPECT_LT(rss, base + size / 4);
  // The scratch copy is gone.
  EXPECT_EQ(Entries(dir + "/cache/tmp"), std::vector<std::string>{});
}

TEST_F(CliStreamsTest, SaveInterruptedLeavesNothing) {
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig);
    const std::string dir = NewDir("save-sig");
    const std::string out = dir + "/out.tar";
    harness::ChildProcess child = Start({"save", "-q", "-o", out, Ref()}, dir);
    const std::string temp = out + ".tmp-" + std::to_string(child.pid());
    ASSERT_TRUE(
        harness::WaitUntil([&] { return FileSize(temp) > 0; }, std::chrono::milliseconds(120000)));
    InterruptAndExpectDeath(child, sig);
    EXPECT_EQ(Entries(dir), (std::vector<std::string>{"stderr", "stdout"}));
  }
  // The next save sweeps a dead run's temporary file, not a live process's.
  const std::string dir = NewDir("save-sweep");
  const std::string out = dir + "/out.tar";
  const std::string dead = out + ".tmp-" + std::to_string(DeadPid());
  const std::string live = out + ".tmp-" + std::to_string(::getpid());
  ASSERT_TRUE(WriteFileAtomic(dead, "partial"));
  ASSERT_TRUE(WriteFileAtomic(live, "partial"));
  CommandResult r = RunHoist({"save", "-q", "-o", out, Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Entries(dir),
            (std::vector<std::string>{"out.tar", "out.tar.tmp-" + std::to_string(::getpid())}));
}

TEST_F(CliStreamsTest, ConvertInterruptedLeavesNoScratch) {
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig);
    const std::string dir = NewDir("convert-sig");
    const std::string work = dir + "/work";
    ASSERT_TRUE(MakeDirs(work));
    harness::ChildProcess child = Start(
        {"convert", "-q", "--work-dir", work, "docker://" + Ref(), "oci:" + dir + "/out:v1"}, dir);
    // Interrupted while its scratch directory holds data.
    const std::string prefix = "hoist-convert-" + std::to_string(child.pid()) + "-";
    ASSERT_TRUE(harness::WaitUntil(
        [&] {
          for (const std::string& e : Entries(work)) {
            if (e.starts_with(prefix) && !FilesUnder(work + "/" + e).empty()) return true;
          }
          return false;
        },
        std::chrono::milliseconds(120000)));
    InterruptAndExpectDeath(child, sig);
    EXPECT_EQ(Entries(work), std::vector<std::string>{});
    EXPECT_EQ(Entries(dir), (std::vector<std::string>{"stderr", "stdout", "work"}));
  }
  // A dead run's scratch directory is swept by the next convert.
  const std::string dir = NewDir("convert-sweep");
  const std::string work = dir + "/work";
  const std::string stale = work + "/hoist-convert-" + std::to_string(DeadPid()) + "-AbC123";
  ASSERT_TRUE(MakeDirs(stale + "/layers"));
  ASSERT_TRUE(WriteFileAtomic(stale + "/layers/big", std::string(1 << 20, 'x')));
  CommandResult r =
      RunHoist({"convert", "-q", "--work-dir", work, "docker://" + Ref(), "oci:" + dir + "/out"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Entries(work), std::vector<std::string>{});
}

TEST_F(CliStreamsTest, LoadInterruptedLeavesNoBlobs) {
  const std::string src = NewDir("load-src");
  const std::string archive = src + "/big.tar";
  CommandResult r = RunHoist({"save", "-q", "-o", archive, Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig);
    const std::string dir = NewDir("load-sig");
    const std::string cache = dir + "/cache";
    // Before: the store's own files only.
    ASSERT_TRUE(RunHoist({"images", "--cache=" + cache}).ok());
    const std::vector<std::string> before = FilesUnder(cache);
    harness::ChildProcess child = Start({"load", "--cache=" + cache, "-i", archive}, dir);
    // Interrupted once it has written a layer blob file (or is writing one).
    const size_t base = before.size();
    ASSERT_TRUE(harness::WaitUntil([&] { return FilesUnder(cache).size() > base + 1; },
                                   std::chrono::milliseconds(120000)));
    InterruptAndExpectDeath(child, sig);
    EXPECT_EQ(FilesUnder(cache), before);
    r = RunHoist({"images", "--cache=" + cache});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text.find(image_->manifest_digest.str().substr(7, 12)), std::string::npos)
        << r.stdout_text;
  }
}

TEST_F(CliStreamsTest, CopyAndPushInterruptedLeaveNothing) {
  // copy into a new dir: or oci: layout: its temporary sibling DIR.hoist-tmp-PID goes.
  for (const std::string transport : {"dir:", "oci:"}) {
    for (int sig : {SIGINT, SIGTERM}) {
      SCOPED_TRACE(transport + std::to_string(sig));
      const std::string dir = NewDir("copy-sig");
      const std::string work = dir + "/work";
      ASSERT_TRUE(MakeDirs(work));
      const std::string out = dir + "/out";
      harness::ChildProcess child =
          Start({"copy", "--work-dir", work, "docker://" + Ref(), transport + out}, dir);
      const std::string temp = out + ".hoist-tmp-" + std::to_string(child.pid());
      ASSERT_TRUE(harness::WaitUntil([&] { return !FilesUnder(temp).empty(); },
                                     std::chrono::milliseconds(120000)));
      InterruptAndExpectDeath(child, sig);
      EXPECT_EQ(Entries(dir), (std::vector<std::string>{"stderr", "stdout", "work"}));
      EXPECT_EQ(Entries(work), std::vector<std::string>{});
    }
  }
  // push and inspect of rootfs:TREE: the layer tar they spool to $TMPDIR goes (the tree: hard
  // links to the layout's ~108 MB of blobs).
  const std::string dir = NewDir("push-sig");
  const std::string tree = dir + "/tree";
  const std::string tmp = dir + "/tmp";
  ASSERT_TRUE(MakeDirs(tmp));
  ASSERT_TRUE(Shell("cp -al '" + *work_ + "/layout/blobs' '" + tree + "'").ok());
  const std::vector<std::vector<std::string>> verbs = {
      {"push", "-q", "rootfs:" + tree, "dir:" + dir + "/out"},
      {"inspect", "rootfs:" + tree},
  };
  for (const std::vector<std::string>& args : verbs) {
    SCOPED_TRACE(args[0]);
    harness::ChildProcess child = Start(args, dir, {"TMPDIR=" + tmp});
    ASSERT_TRUE(harness::WaitUntil(
        [&] {
          for (const std::string& e : Entries(tmp)) {
            if (!FilesUnder(tmp + "/" + e).empty()) return true;
          }
          return false;
        },
        std::chrono::milliseconds(120000)));
    InterruptAndExpectDeath(child, SIGINT);
    EXPECT_EQ(Entries(tmp), std::vector<std::string>{});
    EXPECT_EQ(Entries(dir), (std::vector<std::string>{"stderr", "stdout", "tmp", "tree"}));
  }
  // A killed copy's temporary layout is swept by the next copy to that name.
  const std::string stale = dir + "/again.hoist-tmp-" + std::to_string(DeadPid());
  ASSERT_TRUE(MakeDirs(stale + "/blobs"));
  CommandResult r = RunHoist({"copy", "docker://" + Ref(), "dir:" + dir + "/again"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Entries(dir), (std::vector<std::string>{"again", "stderr", "stdout", "tmp", "tree"}));
}

TEST_F(CliStreamsTest, PullKilledResumesFromItsBlobs) {
  const std::string dir = NewDir("pull-resume");
  const std::string cache = dir + "/cache";
  // One blob at a time, JSON events: interrupted right after the first layer is complete.
  harness::ChildProcess child =
      Start({"pull", "--json", "-j", "1", "--cache=" + cache, Ref()}, dir);
  std::string done_id;
  ASSERT_TRUE(harness::WaitUntil(
      [&] {
        auto text = ReadFile(dir + "/stdout");
        if (!text) return false;
        const size_t at = text->find("{\"event\":\"done\",\"id\":\"");
        if (at == std::string::npos) return false;
        done_id = text->substr(at + 22, 71);
        return true;
      },
      std::chrono::milliseconds(120000)));
  InterruptAndExpectDeath(child, SIGINT);
  // No temporary file is left beside the blob files.
  for (const std::string& f : FilesUnder(cache)) {
    EXPECT_EQ(f.find(".tmp-"), std::string::npos) << f;
  }
  const uint64_t mark = registry_->LogMark();
  CommandResult r = RunHoist({"pull", "-q", "-j", "1", "--cache=" + cache, Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  std::set<std::string> fetched;
  for (const auto& q : *requests) {
    if (q.IsBlobGet() && q.status / 100 == 2) {
      fetched.insert(q.uri.substr(q.uri.find("sha256:")));
    }
  }
  EXPECT_EQ(fetched.count(done_id), 0u) << "fetched again: " << done_id;
  // Every other layer was fetched by the re-run (not all four: one was kept).
  std::set<std::string> layers;
  for (const auto& l : image_->layers) layers.insert(l.digest.str());
  ASSERT_EQ(layers.count(done_id), 1u) << done_id;
  for (const std::string& l : layers) {
    if (l == done_id) continue;
    EXPECT_EQ(fetched.count(l), 1u) << "not fetched by the re-run: " << l;
  }
}

TEST_F(CliStreamsTest, PullProgressOnATerminal) {
  const std::string dir = NewDir("progress");
  PtyRun run = RunInPty({"pull", "--cache=" + dir + "/cache", Ref()});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  const size_t frames = std::count(run.output.begin(), run.output.end(), '\r');
  std::printf("pull on a terminal: %zu frames, %zu bytes in %.2f s\n", frames, run.output.size(),
              run.seconds);
  EXPECT_GE(frames, 1u);
  EXPECT_LE(static_cast<double>(frames), 10.0 * run.seconds + 2) << run.seconds << " s";
  // One line per layer, by its short digest, all "Done" in the last frame.
  const std::string last = run.output.substr(run.output.rfind('\r'));
  for (const auto& l : image_->layers) {
    const std::string hex12 = l.digest.str().substr(7, 12);
    EXPECT_NE(last.find(hex12 + "  Done"), std::string::npos) << last;
  }
  EXPECT_NE(run.output.find("Pulled " + Ref() + " " + image_->manifest_digest.str()),
            std::string::npos);

  // Not on a terminal: no progress at all, the one summary line on stdout.
  CommandResult r = RunHoist({"pull", "--cache=" + dir + "/cache2", Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  EXPECT_EQ(r.stdout_text, "Pulled " + Ref() + " " + image_->manifest_digest.str() + "\n");
  // -q on a terminal: nothing.
  run = RunInPty({"pull", "-q", "--cache=" + dir + "/cache3", Ref()});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  EXPECT_EQ(run.output, "");
  // --json: a start and a done event per layer, the pulled event last.
  r = RunHoist({"pull", "--json", "--cache=" + dir + "/cache4", Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  std::vector<rapidjson::Document> events = JsonLines(r.stdout_text);
  ASSERT_FALSE(events.empty());
  std::multiset<std::string> starts, dones;
  for (const auto& e : events) {
    ASSERT_TRUE(e.IsObject() && e.HasMember("event"));
    const std::string ev = e["event"].GetString();
    if (ev == "start") starts.insert(e["id"].GetString());
    if (ev == "done") {
      dones.insert(e["id"].GetString());
      EXPECT_EQ(e["current"].GetUint64(), e["total"].GetUint64());
    }
  }
  std::multiset<std::string> layers;
  for (const auto& l : image_->layers) layers.insert(l.digest.str());
  EXPECT_EQ(starts, layers);
  EXPECT_EQ(dones, layers);
  const auto& last_event = events.back();
  EXPECT_EQ(std::string(last_event["event"].GetString()), "pulled");
  EXPECT_EQ(std::string(last_event["digest"].GetString()), image_->manifest_digest.str());
}

TEST_F(CliStreamsTest, PushAndSaveProgressAndQuiet) {
  const std::string dir = NewDir("push");
  // save to a file on a terminal: per-layer lines, rate-limited; -q: nothing.
  PtyRun run = RunInPty({"save", "-o", dir + "/a.tar", Ref()});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  size_t frames = std::count(run.output.begin(), run.output.end(), '\r');
  EXPECT_GE(frames, 1u);
  EXPECT_LE(static_cast<double>(frames), 10.0 * run.seconds + 2);
  std::string last = run.output.substr(run.output.rfind('\r'));
  for (const auto& l : image_->layers) {
    EXPECT_NE(last.find(l.digest.str().substr(7, 12) + "  Done"), std::string::npos) << last;
  }
  run = RunInPty({"save", "-q", "-o", dir + "/b.tar", Ref()});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  EXPECT_EQ(run.output, "");

  // load on a terminal: a line per stored layer (a docker-archive's layers are the diff_ids).
  run = RunInPty({"load", "--cache=" + dir + "/cache", "-i", dir + "/a.tar"});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  frames = std::count(run.output.begin(), run.output.end(), '\r');
  EXPECT_GE(frames, 1u);
  EXPECT_LE(static_cast<double>(frames), 10.0 * run.seconds + 2);
  last = run.output.substr(run.output.rfind('\r'));
  for (const auto& l : image_->layers) {
    EXPECT_NE(last.find(l.diff_id.str().substr(7, 12) + "  Done"), std::string::npos) << last;
  }
  EXPECT_NE(last.find("\nLoaded image: " + Ref() + " sha256:"), std::string::npos) << last;
  run = RunInPty({"load", "-q", "--cache=" + dir + "/cache2", "-i", dir + "/a.tar"});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  EXPECT_EQ(run.output, "");

  // push from the archive to a new repository: every blob uploaded, one line each.
  const std::string dst = registry_->DockerRef("streams/pushed", "v1");
  CommandResult r =
      RunHoist({"save", "-q", "--format", "oci-archive", "-o", dir + "/oci.tar", Ref()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  run = RunInPty({"push", "oci-archive:" + dir + "/oci.tar", dst});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  frames = std::count(run.output.begin(), run.output.end(), '\r');
  EXPECT_GE(frames, 1u);
  EXPECT_LE(static_cast<double>(frames), 10.0 * run.seconds + 2);
  last = run.output.substr(run.output.rfind('\r'));
  for (const auto& l : image_->layers) {
    EXPECT_NE(last.find(l.digest.str().substr(7, 12) + "  Done"), std::string::npos) << last;
  }
  EXPECT_NE(run.output.find("\nPushed "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(" " + image_->manifest_digest.str() + "\n"), std::string::npos);
  // -q: nothing at all; the push is a no-op now (every blob is there).
  run = RunInPty({"push", "-q", "oci-archive:" + dir + "/oci.tar", dst});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0)
      << "wait status " << run.status << ": " << run.output;
  EXPECT_EQ(run.output, "");
}

}  // namespace
}  // namespace hoist
