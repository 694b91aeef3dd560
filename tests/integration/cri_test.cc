// The CRI path of hoist-snapshotter (issue 13), against REAL parts: a private containerd 1.6
// with its CRI plugin enabled (tests/harness/containerd.h, `cri.enabled`) and
// `snapshotter = "hoist"`, the real hoist-snapshotter as its proxy plugin, a real registry, real
// runc, driven by the real hoist-cri binary (tools/cri). Runs as root; missing tools FAIL the
// suite, never skip it.
//
//   PullRunAndLogThroughHoist  `hoist-cri run`: CRI pull, pod sandbox (host network), container
//                              that prints from both layers; the exact CRI log; the image's
//                              layers are committed snapshots of hoist with the CRI labels;
//                              nothing is left mounted or running after the run's cleanup.
//   CriLabelsReachTheSeam      with a FAKE RemoteLayerSource (fake-remote-snapshotter): the
//                              Prepare calls of a CRI pull carry cri.layer-digest (the
//                              snapshotter names it in its log lines), layer 1 is served lazily
//                              and its blob is never downloaded; the container still runs.
//   ZstdChunkedImageIsLazy     the REAL lazy source: the image as zstd:chunked (`hoist convert`)
//                              pulled through CRI: both layers "mounted lazily" from the
//                              snapshotter's layer store (by the CRI labels), no layer blob in
//                              containerd's content store; the gzip sandbox image falls back;
//                              the container's log is exact.
//   BadInputIsOneLineError     hoist-cri's errors: one line, exit 1 (125 for `run`); no socket
//                              or a socket nobody listens on is an answer at once.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/mountinfo.h"
#include "base/status.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "tests/harness/containerd.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

#ifndef SNAPSHOTTER_BINARY
#error "SNAPSHOTTER_BINARY must name the hoist-snapshotter executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif
#ifndef FAKE_REMOTE_SNAPSHOTTER_BINARY
#error "FAKE_REMOTE_SNAPSHOTTER_BINARY must name the fake-remote-snapshotter executable"
#endif
#ifndef HOIST_CRI_BINARY
#error "HOIST_CRI_BINARY must name the hoist-cri executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;

constexpr char kLayer1Text[] = "from layer 1 via CRI";
constexpr char kLayer2Text[] = "from layer 2 via CRI";

CommandResult RunTool(const std::vector<std::string>& argv,
                      std::chrono::seconds timeout = std::chrono::seconds(180)) {
  return harness::RunForResult(argv, {.timeout = timeout});
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      out.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) out.push_back(line);
  return out;
}

std::string ChainId(const harness::BuiltImage& image, size_t n) {
  std::string chain = image.layers[0].diff_id.str();
  for (size_t i = 1; i < n; ++i) {
    chain = Digest::Of(chain + " " + image.layers[i].diff_id.str()).str();
  }
  return chain;
}

// A running hoist-snapshotter (or the fake-source one) on `socket`.
class Snapshotter {
 public:
  Status Start(const std::string& binary, const std::string& dir,
               const std::vector<std::string>& env = {}) {
    socket_ = dir + "/sn.sock";
    log_ = dir + "/snapshotter.log";
    harness::ChildProcess::Options o;
    o.stdout_path = log_;
    o.stderr_path = log_;
    o.env = env;
    HOIST_ASSIGN_OR_RETURN(
        child_,
        harness::ChildProcess::Start(
            {binary, "--address", socket_, "--root", dir + "/sn-root", "--log-level", "debug"}, o));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    struct stat st;
    while (::stat(socket_.c_str(), &st) != 0) {
      if (!child_.Running()) return Fail(EIO, "hoist-snapshotter exited; see " + log_);
      if (std::chrono::steady_clock::now() > deadline) {
        return Fail(ETIMEDOUT, "hoist-snapshotter did not create " + socket_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Ok();
  }
  const std::string& socket() const { return socket_; }
  const std::string& log() const { return log_; }
  bool Running() { return child_.Running(); }

 private:
  std::string socket_, log_;
  harness::ChildProcess child_;
};

class CriTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the CRI tests must run as root");
    if (auto s = harness::RequirePrograms(
            {"containerd", "ctr", "runc", "containerd-shim-runc-v2", "docker-registry", "tar"});
        !s) {
      return fail(s.error().message());
    }
    char templ[] = "/tmp/hoist-cri-XXXXXX";
    if (::mkdtemp(templ) == nullptr) return fail("mkdtemp");
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();

    auto busybox = ReadFile("/bin/busybox");
    if (!busybox) return fail(busybox.error().message());
    auto base_files = [&](const std::string& marker) {
      std::vector<FileSpec> files = {FileSpec::Dir("bin"),
                                     FileSpec::File("bin/busybox", *busybox, 0755)};
      for (const char* applet : {"sh", "cat", "sleep"}) {
        files.push_back(FileSpec::Symlink(std::string("bin/") + applet, "busybox"));
      }
      for (const char* dir : {"proc", "dev", "sys", "etc"}) files.push_back(FileSpec::Dir(dir));
      files.push_back(FileSpec::File(marker, std::string(kLayer1Text) + "\n"));
      return files;
    };
    // The pod's sandbox ("pause") image: busybox sleeping until CRI kills it.
    auto pause =
        harness::BuildOciImage(*work_ + "/pause-layout", {LayerSpec(base_files("etc/pause"))},
                               {.tag = "v1", .cmd = {"/bin/sleep", "1000000"}});
    if (!pause) return fail(pause.error().message());
    pause_ = new harness::BuiltImage(*pause);
    if (auto p = harness::PushOciLayout(pause->OciRef(), registry_->DockerRef("cri/pause", "v1"));
        !p) {
      return fail(p.error().message());
    }
    // The container's image: two layers, each with a line to print.
    auto image = harness::BuildOciImage(
        *work_ + "/img-layout",
        {LayerSpec(base_files("etc/one")),
         LayerSpec({FileSpec::File("etc/two", std::string(kLayer2Text) + "\n")})},
        {.tag = "v1", .cmd = {"/bin/sh"}});
    if (!image) return fail(image.error().message());
    image_ = new harness::BuiltImage(*image);
    if (auto p = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("cri/img", "v1"));
        !p) {
      return fail(p.error().message());
    }
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static std::string NewDir(const std::string& name) {
    const std::string d = *work_ + "/" + name;
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }
  static std::string ImageRef() { return registry_->ImageRef("cri/img", "v1"); }

  // containerd with CRI, `snapshotter = "hoist"` served by `sn`.
  static Result<std::unique_ptr<harness::PrivateContainerd>> StartContainerd(
      const std::string& dir, const Snapshotter& sn) {
    HOIST_RETURN_IF_ERROR(MakeDirs(dir));
    return harness::PrivateContainerd::Start(
        dir, {.extra_config = "[proxy_plugins]\n  [proxy_plugins.hoist]\n    type = \"snapshot\"\n"
                              "    address = \"" +
                              sn.socket() + "\"\n",
              .cri = {.enabled = true,
                      .sandbox_image = registry_->ImageRef("cri/pause", "v1"),
                      .snapshotter = "hoist",
                      .plain_http_registries = {registry_->host_port()}}});
  }

  // pod.json (host network, logs under dir/logs) and ctr.json (prints both layers' lines).
  static void WriteConfigs(const std::string& dir, const std::string& name,
                           const std::string& image = ImageRef()) {
    ASSERT_TRUE(WriteFileAtomic(dir + "/pod.json",
                                "{\"metadata\": {\"name\": \"" + name + "\", \"uid\": \"uid-" +
                                    name +
                                    "\", \"namespace\": \"hoist-test\"},\n"
                                    " \"log_directory\": \"" +
                                    dir +
                                    "/logs\",\n"
                                    " \"linux\": {\"security_context\": {\"namespace_options\": "
                                    "{\"network\": \"NODE\"}}}}\n")
                    .has_value());
    ASSERT_TRUE(WriteFileAtomic(dir + "/ctr.json",
                                "{\"metadata\": {\"name\": \"printer\"},\n"
                                " \"image\": {\"image\": \"" +
                                    image +
                                    "\"},\n"
                                    " \"command\": [\"/bin/cat\", \"/etc/one\", \"/etc/two\"],\n"
                                    " \"log_path\": \"printer.log\"}\n")
                    .has_value());
  }

  // `hoist-cri run`: the exact log in CRI's format, one line per output line, on stdout; the
  // timing line on stderr; exit 0.
  static void ExpectRunPrintsLog(harness::PrivateContainerd& cd, const std::string& dir) {
    CommandResult r = RunTool({HOIST_CRI_BINARY, "--address", cd.socket(), "--timeout", "120",
                               "run", dir + "/ctr.json", "--pod", dir + "/pod.json", "--timing"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe() << ": " << r.stderr_text;
    const std::vector<std::string> lines = Lines(r.stdout_text);
    ASSERT_EQ(lines.size(), 2u) << r.stdout_text;
    const std::regex ts(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) )");
    const std::string texts[] = {kLayer1Text, kLayer2Text};
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_TRUE(std::regex_search(lines[i], ts)) << lines[i];
      EXPECT_TRUE(lines[i].ends_with(std::string(" stdout F ") + texts[i])) << lines[i];
    }
    EXPECT_TRUE(r.stdout_text.ends_with("\n"));
    EXPECT_TRUE(std::regex_match(r.stderr_text,
                                 std::regex(R"(hoist-cri timing: pull=\d+\.\d{3} runp=\d+\.\d{3} )"
                                            R"(create=\d+\.\d{3} start=\d+\.\d{3} exit=\d+\.\d{3} )"
                                            R"(total=\d+\.\d{3}\n)")))
        << r.stderr_text;
  }

  // After the run's cleanup: no container, no task, nothing mounted under containerd's dirs.
  static void ExpectNothingLeft(harness::PrivateContainerd& cd) {
    auto containers = cd.Ctr({"-n", "k8s.io", "containers", "ls", "-q"});
    ASSERT_TRUE(containers.has_value()) << containers.error().message();
    EXPECT_EQ(*containers, "");
    auto tasks = cd.Ctr({"-n", "k8s.io", "tasks", "ls", "-q"});
    ASSERT_TRUE(tasks.has_value()) << tasks.error().message();
    EXPECT_EQ(*tasks, "");
    auto mounts = MountPointsUnder(cd.dir());
    ASSERT_TRUE(mounts.has_value());
    EXPECT_EQ(*mounts, std::vector<std::string>{});
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static harness::BuiltImage* pause_;
  static harness::BuiltImage* image_;
};

std::string* CriTest::setup_error_ = nullptr;
std::string* CriTest::work_ = nullptr;
harness::TestRegistry* CriTest::registry_ = nullptr;
harness::BuiltImage* CriTest::pause_ = nullptr;
harness::BuiltImage* CriTest::image_ = nullptr;

TEST_F(CriTest, PullRunAndLogThroughHoist) {
  const std::string dir = NewDir("plain");
  Snapshotter sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, dir);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  auto cd = StartContainerd(dir + "/cd", sn);
  ASSERT_TRUE(cd.has_value()) << cd.error().message();

  CommandResult v = RunTool({HOIST_CRI_BINARY, "--address", (*cd)->socket(), "version"});
  ASSERT_EQ(v.exit_code, 0) << v.stderr_text;
  EXPECT_TRUE(v.stdout_text.starts_with("Version: 0.1.0\nRuntimeName: containerd\n"))
      << v.stdout_text;
  EXPECT_TRUE(v.stdout_text.ends_with("\nRuntimeApiVersion: v1\n")) << v.stdout_text;

  WriteConfigs(dir, "plain");
  ExpectRunPrintsLog(**cd, dir);

  // Every layer of both images is a committed snapshot of hoist under its chain ID, and nothing
  // else is left (the container's and the pod's active snapshots went with them).
  const std::string chain1 = ChainId(*image_, 1), chain2 = ChainId(*image_, 2);
  const std::string pause_chain = ChainId(*pause_, 1);
  auto ls = (*cd)->Ctr({"-n", "k8s.io", "snapshots", "--snapshotter=hoist", "ls"});
  ASSERT_TRUE(ls.has_value()) << ls.error().message();
  std::vector<std::string> got;
  for (const std::string& line : Lines(*ls)) {
    if (line.starts_with("KEY")) continue;
    std::vector<std::string> words;
    std::string w;
    for (char c : line + " ") {
      if (c != ' ') {
        w += c;
      } else if (!w.empty()) {
        words.push_back(w);
        w.clear();
      }
    }
    std::string joined;
    for (const std::string& x : words) joined += (joined.empty() ? "" : " ") + x;
    got.push_back(joined);
  }
  std::vector<std::string> want = {pause_chain + " Committed", chain1 + " Committed",
                                   chain2 + " " + chain1 + " Committed"};
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want) << *ls;

  // The labels CRI passed with the layers (disable_snapshot_annotations = false).
  const std::string d1 = image_->layers[0].digest.str(), d2 = image_->layers[1].digest.str();
  struct Want {
    std::string chain, digest, layers;
  };
  for (const Want& w : {Want{chain1, d1, d1 + "," + d2}, Want{chain2, d2, d2}}) {
    auto info = (*cd)->Ctr({"-n", "k8s.io", "snapshots", "--snapshotter=hoist", "info", w.chain});
    ASSERT_TRUE(info.has_value()) << info.error().message();
    for (const std::string& label :
         {"\"containerd.io/snapshot.ref\": \"" + w.chain + "\"",
          "\"containerd.io/snapshot/cri.image-ref\": \"" + ImageRef() + "\"",
          "\"containerd.io/snapshot/cri.layer-digest\": \"" + w.digest + "\"",
          "\"containerd.io/snapshot/cri.manifest-digest\": \"" + image_->manifest_digest.str() +
              "\"",
          "\"containerd.io/snapshot/cri.image-layers\": \"" + w.layers + "\""}) {
      EXPECT_NE(info->find(label), std::string::npos) << label << " in " << *info;
    }
  }
  // hoist-snapshotter itself prepared the layers for unpacking (containerd's extract keys).
  auto log = ReadFile(sn.log());
  ASSERT_TRUE(log.has_value());
  for (const std::string& chain : {chain1, chain2, pause_chain}) {
    EXPECT_TRUE(std::regex_search(
        *log, std::regex("Prepare k8s\\.io/\\d+/extract-[^ ]+ " + chain + ": ok")))
        << chain << " in " << *log;
  }
  ExpectNothingLeft(**cd);

  // A second run of the pulled image works the same, and prints only its own lines although
  // CRI appends them to the same log file.
  ExpectRunPrintsLog(**cd, dir);
  auto log_file = ReadFile(dir + "/logs/printer.log");
  ASSERT_TRUE(log_file.has_value());
  EXPECT_EQ(Lines(*log_file).size(), 4u) << *log_file;
  ExpectNothingLeft(**cd);

  // The same by single verbs, with a container that fails: runp, create, start, wait (its exit
  // code), inspect, stop, rm, stopp, rmp; `run` passes the container's exit code on.
  const std::string step = NewDir("plain/steps");
  WriteConfigs(step, "steps");
  ASSERT_TRUE(
      WriteFileAtomic(step + "/fail.json",
                      "{\"metadata\": {\"name\": \"failer\"}, \"image\": \"" + ImageRef() +
                          "\", \"command\": [\"/bin/sh\", \"-c\", \"cat /etc/two; exit 3\"], "
                          "\"log_path\": \"failer.log\"}")
          .has_value());
  auto cri = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {HOIST_CRI_BINARY, "--address", (*cd)->socket()});
    CommandResult r = RunTool(args);
    EXPECT_EQ(r.exit_code, 0) << args[3] << ": " << r.stderr_text;
    EXPECT_EQ(r.stderr_text, "");
    return r.stdout_text;
  };
  const std::string id_re = "[0-9a-f]{64}\n";
  const std::string pod_id = cri({"runp", step + "/pod.json"});
  ASSERT_TRUE(std::regex_match(pod_id, std::regex(id_re))) << pod_id;
  const std::string ctr_id =
      cri({"create", pod_id.substr(0, 64), step + "/fail.json", step + "/pod.json"});
  ASSERT_TRUE(std::regex_match(ctr_id, std::regex(id_re))) << ctr_id;
  const std::string cid = ctr_id.substr(0, 64), pid = pod_id.substr(0, 64);
  EXPECT_EQ(cri({"start", cid}), "");
  EXPECT_EQ(cri({"wait", cid}), "3\n");
  const std::string inspect = cri({"inspect", cid});
  for (const std::string& field :
       {"\"id\": \"" + cid + "\"", std::string("\"name\": \"failer\""),
        std::string("\"state\": \"CONTAINER_EXITED\""), std::string("\"exit_code\": 3"),
        "\"log_path\": \"" + step + "/logs/failer.log\""}) {
    EXPECT_NE(inspect.find(field), std::string::npos) << field << " in " << inspect;
  }
  auto failer_log = ReadFile(step + "/logs/failer.log");
  ASSERT_TRUE(failer_log.has_value());
  EXPECT_TRUE(failer_log->ends_with(std::string(" stdout F ") + kLayer2Text + "\n")) << *failer_log;
  EXPECT_EQ(cri({"stop", cid}), "");
  EXPECT_EQ(cri({"rm", cid}), "");
  EXPECT_EQ(cri({"stopp", pid}), "");
  EXPECT_EQ(cri({"rmp", pid}), "");
  CommandResult gone = RunTool({HOIST_CRI_BINARY, "--address", (*cd)->socket(), "inspect", cid});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_TRUE(gone.stderr_text.starts_with("hoist-cri: CRI ContainerStatus: NOT_FOUND: "))
      << gone.stderr_text;
  EXPECT_EQ(gone.stderr_text.find('\n'), gone.stderr_text.size() - 1) << gone.stderr_text;
  CommandResult failed = RunTool({HOIST_CRI_BINARY, "--address", (*cd)->socket(), "run",
                                  step + "/fail.json", "--pod", step + "/pod.json"});
  EXPECT_EQ(failed.exit_code, 3) << failed.stderr_text;
  EXPECT_TRUE(failed.stdout_text.ends_with(std::string(" stdout F ") + kLayer2Text + "\n"))
      << failed.stdout_text;
  ExpectNothingLeft(**cd);
  EXPECT_TRUE(sn.Running());
}

TEST_F(CriTest, CriLabelsReachTheSeam) {
  const std::string dir = NewDir("seam");
  const std::string layers = NewDir("seam/layers");
  const std::string chain1 = ChainId(*image_, 1), chain2 = ChainId(*image_, 2);
  std::string name = chain1;
  name[name.find(':')] = '-';
  const std::string tree = layers + "/" + name;
  ASSERT_TRUE(MakeDirs(tree).has_value());
  CommandResult x = RunTool({"tar", "-xpzf", image_->layers[0].blob_path, "--numeric-owner",
                             "--xattrs", "--xattrs-include=*", "-C", tree});
  ASSERT_TRUE(x.ok()) << x.stderr_text;

  Snapshotter sn;
  auto started = sn.Start(FAKE_REMOTE_SNAPSHOTTER_BINARY, dir, {"HOIST_FAKE_LAYER_DIR=" + layers});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  auto cd = StartContainerd(dir + "/cd", sn);
  ASSERT_TRUE(cd.has_value()) << cd.error().message();

  CommandResult pull =
      RunTool({HOIST_CRI_BINARY, "--address", (*cd)->socket(), "pull", ImageRef()});
  ASSERT_EQ(pull.exit_code, 0) << pull.stderr_text;
  EXPECT_EQ(pull.stdout_text, image_->config_digest.str() + "\n");
  CommandResult inspecti =
      RunTool({HOIST_CRI_BINARY, "--address", (*cd)->socket(), "inspecti", ImageRef()});
  EXPECT_EQ(inspecti.exit_code, 0) << inspecti.stderr_text;
  EXPECT_EQ(inspecti.stdout_text, image_->config_digest.str() + "\n");

  // The snapshotter's log names each layer by the digest in its cri.layer-digest label: CRI
  // sends no stargz labels, so that name can only come from the CRI's Prepare labels.
  auto log = ReadFile(sn.log());
  ASSERT_TRUE(log.has_value());
  const std::string d1 = image_->layers[0].digest.str(), d2 = image_->layers[1].digest.str();
  EXPECT_NE(log->find("layer " + chain1 + " (" + d1 + "): mounted lazily from " + tree),
            std::string::npos)
      << *log;
  EXPECT_NE(log->find("layer " + chain2 + " (" + d2 + "): not lazy, containerd unpacks it: "),
            std::string::npos)
      << *log;
  // containerd recorded layer 1 as the remote snapshot and never downloaded its blob.
  auto info = (*cd)->Ctr({"-n", "k8s.io", "snapshots", "--snapshotter=hoist", "info", chain1});
  ASSERT_TRUE(info.has_value()) << info.error().message();
  EXPECT_NE(info->find("\"containerd.io/snapshot/remote\": \"remote snapshot\""), std::string::npos)
      << *info;
  auto content = (*cd)->Ctr({"-n", "k8s.io", "content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  EXPECT_EQ(content->find(d1), std::string::npos) << *content;
  EXPECT_NE(content->find(d2), std::string::npos) << *content;

  // The container reads layer 1 from the source's tree.
  WriteConfigs(dir, "seam");
  ExpectRunPrintsLog(**cd, dir);
  ExpectNothingLeft(**cd);
}

TEST_F(CriTest, ZstdChunkedImageIsLazy) {
  const std::string dir = NewDir("zstd");
  const std::string ref = registry_->ImageRef("cri/zstd", "v1");
  CommandResult conv =
      RunTool({HOIST_BINARY, "convert", "-q", registry_->DockerRef("cri/img", "v1"),
               registry_->DockerRef("cri/zstd", "v1")});
  ASSERT_TRUE(conv.ok()) << conv.stderr_text;
  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(ref));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_EQ(image->manifest.layers.size(), 2u);

  Snapshotter sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, dir);
  ASSERT_TRUE(started.has_value()) << started.error().message();
  auto cd = StartContainerd(dir + "/cd", sn);
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  WriteConfigs(dir, "zstd", ref);
  ExpectRunPrintsLog(**cd, dir);

  auto log = ReadFile(sn.log());
  ASSERT_TRUE(log.has_value());
  auto content = (*cd)->Ctr({"-n", "k8s.io", "content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  for (const Descriptor& d : image->manifest.layers) {
    EXPECT_NE(log->find(" (" + d.digest.str() + "): mounted lazily from " + dir +
                        "/sn-root/layers/" + std::string(d.digest.hex()) + " "),
              std::string::npos)
        << *log;
    EXPECT_EQ(content->find(d.digest.str()), std::string::npos) << *content;
  }
  // The sandbox image is gzip: one line saying why, then containerd's unpack.
  EXPECT_NE(
      log->find(" (" + pause_->layers[0].digest.str() + "): not lazy, containerd unpacks it: "),
      std::string::npos)
      << *log;
  ExpectNothingLeft(**cd);
}

TEST(CriClientFlags, BadInputIsOneLineError) {
  char templ[] = "/tmp/hoist-cri-flags-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ;
  ASSERT_TRUE(WriteFileAtomic(dir + "/bad.json", "{\"metadata\": {\"name\": 7}}").has_value());
  ASSERT_TRUE(WriteFileAtomic(dir + "/pod.json",
                              "{\"metadata\": {\"name\": \"p\", \"uid\": \"u\", \"namespace\": "
                              "\"n\"}, \"log_directory\": \"" +
                                  dir + "/logs\"}")
                  .has_value());
  ASSERT_TRUE(WriteFileAtomic(dir + "/ctr.json",
                              "{\"metadata\": {\"name\": \"c\"}, \"image\": \"x\", \"tyop\": 1}")
                  .has_value());
  ASSERT_TRUE(
      WriteFileAtomic(dir + "/good.json", "{\"metadata\": {\"name\": \"c\"}, \"image\": \"x\"}")
          .has_value());
  const std::string none = dir + "/none.sock";
  // A socket file nobody listens on (as a stopped containerd leaves behind).
  const std::string stale = dir + "/stale.sock";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--address", none, "version"},
            1,
            "no CRI server answers on " + none + ": No such file or directory"},
           {{"--address", stale, "version"},
            1,
            "no CRI server answers on " + stale + ": Connection refused"},
           {{"--address", "rel.sock", "version"},
            1,
            "the CRI address must be an absolute socket path or unix:///path, not 'rel.sock'"},
           {{"--address", none, "run", dir + "/good.json", "--pod", dir + "/pod.json"},
            125,
            "no CRI server answers on " + none + ": No such file or directory"},
           {{"--address", "unix://" + stale, "run", dir + "/good.json", "--pod", dir + "/pod.json"},
            125,
            "no CRI server answers on " + stale + ": Connection refused"},
           {{"version", "extra"}, 1, "The following argument was not expected: extra"},
           // Configs are checked before anything is sent (the socket is never reached).
           {{"--address", none, "run", dir + "/bad.json", "--pod", dir + "/pod.json"},
            125,
            dir + "/bad.json: metadata.name: must be a string"},
           {{"--address", none, "create", "POD", dir + "/ctr.json", dir + "/pod.json"},
            1,
            dir + "/ctr.json: unknown field tyop"},
           {{"--address", none, "runp", dir + "/missing.json"},
            1,
            dir + "/missing.json: No such file or directory"},
       }) {
    std::vector<std::string> argv = {HOIST_CRI_BINARY};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    CommandResult r = RunTool(argv, std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, c.code) << c.message;
    EXPECT_EQ(r.stderr_text, "hoist-cri: " + c.message + "\n");
  }
  (void)RemoveTree(dir);
}

}  // namespace
}  // namespace hoist
