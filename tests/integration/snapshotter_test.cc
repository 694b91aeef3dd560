// hoist-snapshotter as containerd's proxy snapshot plugin, against REAL parts: a private
// containerd 1.6 (tests/harness/containerd.h) with `[proxy_plugins.hoist]`, the real
// hoist-snapshotter binary, a real registry, real runc (`ctr run`), real umoci. Runs as root;
// missing tools FAIL the suite, never skip it.
//
//   PullRunTreeRestartAndGc  `ctr image pull --snapshotter hoist`; `ctr run` prints exact
//                            output; the rootfs (ctr image mount) equals `umoci unpack` exactly;
//                            kill -9 + restart of the snapshotter, then `ctr run` works again;
//                            `ctr image rm --sync` (GC) leaves no snapshot, no mount, no
//                            directory.
//   LazySeamWithFakeSource   the seam, with a FAKE RemoteLayerSource (fake-remote-snapshotter)
//                            that serves layer 1 from a pre-extracted tree: Prepare answers
//                            ALREADY_EXISTS, containerd records the remote snapshot and never
//                            downloads that layer's blob, `ctr run` and the exact tree hold.
//   LazyZstdChunkedThroughTheLayerStore
//                            the REAL lazy source (the layer store): `ctr-remote image rpull`
//                            of the image as zstd:chunked by `hoist convert`; both layers are
//                            remote snapshots served from ROOT/layers/<hex> ("mounted lazily"
//                            per layer), containerd's content store has no layer blob, the
//                            registry served layer blobs only by Range (206); `ctr run` prints
//                            exactly; the rootfs equals `umoci unpack`; kill -9 + restart (the
//                            dead store mount is detached, a new one mounted, same paths) and
//                            a new container starts; GC leaves no snapshot and no layer dir;
//                            SIGTERM unmounts the store.
//   LazyEstargzByCtrRemote   the same for the image converted to eStargz by ctr-remote.
//   CredentialsAreReadAnewFromTheDockerConfig
//                            a basic-auth registry: without an entry in the daemon's docker
//                            config the layers fall back (one line each); an entry written
//                            while the daemon runs makes the next pull lazy.
//   MixedGzipAndZstdChunked  an image of a gzip layer and a zstd:chunked layer: the gzip layer
//                            falls back (one log line saying why) and containerd downloads and
//                            unpacks it; the other is a remote snapshot from the store (though
//                            containerd 1.6 downloads every blob above one it must unpack);
//                            run and exact tree hold.
//   LazyPythonZstdChunkedBySkopeo, LazyPythonZstdChunkedByCtrRemote
//                            the python image (tests/harness/python_image.h) as zstd:chunked by
//                            `skopeo copy --dest-compress-format zstd:chunked` and by
//                            `ctr-remote image convert --zstdchunked`: rpull and run lazily
//                            (ExpectLazyPythonRun: every layer a remote snapshot, no layer blob
//                            in the content store, only Range reads of layer blobs), and
//                            `python3 -c 'print(40+2)'` prints exactly "42\n".
//   LazyPythonGzipWithAPublishedIndex
//                            the python image as plain gzip: with no index, each layer falls
//                            back (one line) and containerd downloads and unpacks it; after
//                            `hoist index`, rpull and run lazily (ExpectLazyPythonRun), each
//                            gzip blob sent by Range only, span by span.
//   TwoNamesOnOneBackendLoseEachOthersSnapshots
//                            one daemon under two plugin names: containerd's GC of one name
//                            removes the other name's snapshots (the documented limit).
//   TwoNamesOnTwoDaemonsKeepEachOthersSnapshots
//                            two daemons, two roots, two names: each name's GC leaves the
//                            other's snapshots intact and both images still run.
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
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
#include "tests/harness/python_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"

#ifndef SNAPSHOTTER_BINARY
#error "SNAPSHOTTER_BINARY must name the hoist-snapshotter executable"
#endif
#ifndef FAKE_REMOTE_SNAPSHOTTER_BINARY
#error "FAKE_REMOTE_SNAPSHOTTER_BINARY must name the fake-remote-snapshotter executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;
using Tree = std::map<std::string, harness::TreeNode>;

constexpr char kRunOutput[] = "from layer 1\nfrom layer 2\nnew\n";
constexpr char kPython[] = "python3 -c 'print(40+2)'";

CommandResult RunTool(const std::vector<std::string>& argv) {
  return harness::RunForResult(argv, {.timeout = std::chrono::seconds(180)});
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool SocketAnswers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  CommandResult r = RunTool({"ls", "-A", dir});
  std::string line;
  for (char c : r.stdout_text) {
    if (c == '\n') {
      out.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  return out;
}

// One running hoist-snapshotter (the real binary, or the fake-source one).
class SnapshotterProcess {
 public:
  Status Start(const std::string& binary, const std::string& root, const std::string& socket,
               const std::string& log, const std::vector<std::string>& env = {},
               const std::vector<std::string>& args = {}) {
    binary_ = binary;
    root_ = root;
    socket_ = socket;
    log_ = log;
    env_ = env;
    args_ = args;
    return Restart();
  }
  Status Restart() {
    harness::ChildProcess::Options o;
    o.stdout_path = log_;
    o.stderr_path = log_;
    o.env = env_;
    std::vector<std::string> argv = {binary_, "--address",   socket_, "--root",
                                     root_,   "--log-level", "debug"};
    argv.insert(argv.end(), args_.begin(), args_.end());
    HOIST_ASSIGN_OR_RETURN(child_, harness::ChildProcess::Start(argv, o));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!SocketAnswers(socket_)) {
      if (!child_.Running()) return Fail(EIO, "hoist-snapshotter exited; see " + log_);
      if (std::chrono::steady_clock::now() > deadline) {
        return Fail(ETIMEDOUT, "hoist-snapshotter did not answer on " + socket_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Ok();
  }
  // SIGKILL to the daemon's process group (supervisor and worker), then waits until the worker
  // (ROOT/snapshotter.pid, the supervisor's child, reaped by init) is gone: until then its
  // socket may still answer and make Restart return early.
  void Kill() {
    auto pid_text = ReadFile(root_ + "/snapshotter.pid");
    child_.Kill();
    if (!pid_text) return;
    const pid_t worker = static_cast<pid_t>(std::strtol(pid_text->c_str(), nullptr, 10));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (worker > 0 && ::kill(worker, 0) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void Stop() { child_.Terminate(); }
  harness::ChildProcess& child() { return child_; }

 private:
  std::string binary_, root_, socket_, log_;
  std::vector<std::string> env_, args_;
  harness::ChildProcess child_;
};

// `[proxy_plugins]` with one snapshot plugin per {name, socket}.
std::string ProxyConfig(const std::vector<std::pair<std::string, std::string>>& plugins) {
  std::string out = "[proxy_plugins]\n";
  for (const auto& [name, socket] : plugins) {
    out += "  [proxy_plugins." + name + "]\n    type = \"snapshot\"\n    address = \"" + socket +
           "\"\n";
  }
  return out;
}
std::string ProxyConfig(const std::string& socket) { return ProxyConfig({{"hoist", socket}}); }

class SnapshotterContainerdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the snapshotter tests must run as root");
    if (auto s = harness::RequirePrograms({"containerd", "ctr", "ctr-remote", "runc", "skopeo",
                                           "umoci", "docker-registry", "tar"});
        !s) {
      return fail(s.error().message());
    }
    char templ[] = "/tmp/hoist-snap-XXXXXX";
    if (::mkdtemp(templ) == nullptr) return fail("mkdtemp");
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();

    auto busybox = ReadFile("/bin/busybox");
    if (!busybox) return fail(busybox.error().message());
    std::vector<FileSpec> base = {FileSpec::Dir("bin"),
                                  FileSpec::File("bin/busybox", *busybox, 0755)};
    for (const char* applet : {"sh", "cat", "ls", "echo"}) {
      base.push_back(FileSpec::Symlink(std::string("bin/") + applet, "busybox"));
    }
    base.push_back(FileSpec::File("etc/hello", "from layer 1\n"));
    base.push_back(FileSpec::File("etc/gone", "removed by layer 2\n"));
    base.push_back(FileSpec::File("data/old", "hidden by the opaque dir\n").Owner(7, 8));
    base.push_back(FileSpec::Dir("tmp", 01777));
    for (const char* dir : {"proc", "dev", "sys"}) base.push_back(FileSpec::Dir(dir));
    std::vector<FileSpec> top = {
        FileSpec::File("etc/hello2", "from layer 2\n", 0640).Xattr("user.origin", "layer2"),
        FileSpec::Hardlink("etc/hello2-link", "etc/hello2"),
        FileSpec::Whiteout("etc/gone"),
        FileSpec::Opaque("data"),
        FileSpec::File("data/new", "new\n"),
        FileSpec::Symlink("link", "etc/hello2"),
    };
    layout_ = new std::string(*work_ + "/layout");
    auto image = harness::BuildOciImage(*layout_, {LayerSpec(base), LayerSpec(top)},
                                        {.tag = "v1", .cmd = {"/bin/sh"}});
    if (!image) return fail(image.error().message());
    image_ = new harness::BuiltImage(*image);
    if (auto p = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("snap/img", "v1"));
        !p) {
      return fail(p.error().message());
    }
    CommandResult u =
        RunTool({"umoci", "unpack", "--image", *layout_ + ":v1", *work_ + "/umoci-bundle"});
    if (!u.ok()) return fail("umoci unpack: " + u.stderr_text);
    auto tree = harness::WalkTree(*work_ + "/umoci-bundle/rootfs");
    if (!tree) return fail(tree.error().message());
    umoci_tree_ = new Tree(std::move(*tree));
    // The same image as zstd:chunked, by the real `hoist convert`.
    CommandResult conv =
        RunTool({HOIST_BINARY, "convert", "-q", registry_->DockerRef("snap/img", "v1"),
                 registry_->DockerRef("snap/zstd", "v1")});
    if (!conv.ok()) return fail("hoist convert: " + conv.stderr_text);
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name;
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }
  static std::string Ref() { return registry_->ImageRef("snap/img", "v1"); }

  // The layer descriptors of `ref`'s manifest, lowest first.
  static std::vector<Descriptor> LayerDescriptors(const std::string& ref) {
    auto client = RegistryClient::CreateDefault();
    EXPECT_TRUE(client.has_value());
    if (!client) return {};
    auto image = (*client)->Resolve(*Reference::Parse(ref));
    EXPECT_TRUE(image.has_value()) << image.error().message();
    if (!image) return {};
    return image->manifest.layers;
  }
  // The layer digests of `ref`'s manifest, lowest first.
  static std::vector<Digest> LayerDigests(const std::string& ref) {
    std::vector<Digest> out;
    for (const Descriptor& d : LayerDescriptors(ref)) out.push_back(d.digest);
    return out;
  }

  // The python image (tests/harness/python_image.h) as the OCI layout *py_layout_, tag "py";
  // built at the first call.
  static void BuildPythonLayout() {
    if (py_layout_ != nullptr) return;
    auto layers = harness::PythonImageLayers();
    ASSERT_TRUE(layers.has_value()) << layers.error().message();
    const std::string layout = *work_ + "/py-layout";
    auto image = harness::BuildOciImage(layout, *layers, {.tag = "py", .cmd = {"python3"}});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    py_layout_ = new std::string(layout);
  }

  // The python image as zstd:chunked by skopeo, straight from the OCI layout into the repository
  // snap/py-skopeo, which holds no gzip copy of its layers (skopeo reuses a blob the
  // destination has, or its blob-info cache knows, instead of converting it). Idempotent.
  static void PushPythonBySkopeo() {
    ASSERT_NO_FATAL_FAILURE(BuildPythonLayout());
    CommandResult copy =
        RunTool({"skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-compress",
                 "--dest-compress-format", "zstd:chunked", "oci:" + *py_layout_ + ":py",
                 registry_->DockerRef("snap/py-skopeo", "v1")});
    ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  }
  static std::string PythonBySkopeoRef() { return registry_->ImageRef("snap/py-skopeo", "v1"); }

  // `ctr-remote image convert --oci FLAGS` of the OCI layout `layout` (tag `tag`), imported into
  // a containerd of its own under work_/conv_dir, then pushed to the registry as `ref`.
  void ConvertByCtrRemote(const std::string& conv_dir, const std::string& layout,
                          const std::string& tag, const std::vector<std::string>& flags,
                          const std::string& ref) {
    const std::string conv = NewDir(conv_dir);
    auto converter = harness::PrivateContainerd::Start(conv);
    ASSERT_TRUE(converter.has_value()) << converter.error().message();
    CommandResult t = RunTool({"tar", "-C", layout, "-cf", conv + "/img.tar", "."});
    ASSERT_TRUE(t.ok()) << t.stderr_text;
    // The layout's tag is appended to the base name.
    const std::string base = registry_->host_port() + "/snap/conv-src";
    auto imported =
        (*converter)
            ->Ctr({"images", "import", "--no-unpack", "--base-name", base, conv + "/img.tar"});
    ASSERT_TRUE(imported.has_value()) << imported.error().message();
    std::vector<std::string> argv = {"ctr-remote", "-a",      (*converter)->socket(),
                                     "image",      "convert", "--oci"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(base + ":" + tag);
    argv.push_back(ref);
    auto converted = harness::RunChecked(argv, {.timeout = std::chrono::seconds(180)});
    ASSERT_TRUE(converted.has_value()) << converted.error().message();
    auto pushed = (*converter)->Ctr({"images", "push", "--plain-http", ref});
    ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  }

  // The zstd:chunked python image at `ref`, pulled by `ctr-remote image rpull` and run, all
  // lazily: each layer is a remote snapshot served from the layer store (one "mounted lazily"
  // line each, no fallback), containerd's content store has no layer blob, the registry served
  // layer blobs only by Range; `python3 -c 'print(40+2)'` prints exactly "42\n"; GC then leaves
  // no snapshot, layer or mount, and SIGTERM stops the daemon cleanly.
  // `media_type`: every layer's. Plain gzip layers (a published index) are also checked to be
  // sent by span: no one request sent a blob larger than two spans whole.
  void ExpectLazyPythonRun(
      const std::string& name, const std::string& ref,
      const std::string& media_type = "application/vnd.oci.image.layer.v1.tar+zstd") {
    const std::string dir = NewDir(name);
    const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
    std::vector<Digest> layers;
    std::map<std::string, int64_t> sizes;
    for (const Descriptor& d : LayerDescriptors(ref)) {
      // A producer that reused a gzip blob instead of converting it would show here.
      EXPECT_EQ(d.media_type, media_type) << d.digest.str();
      layers.push_back(d.digest);
      sizes[d.digest.str()] = d.size;
    }
    ASSERT_EQ(layers.size(), 2u);
    SnapshotterProcess sn;
    auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                            {"--prefetch", "none"});
    ASSERT_TRUE(started.has_value()) << started.error().message();
    ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
    auto cd = harness::PrivateContainerd::Start(
        dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
    ASSERT_TRUE(cd.has_value()) << cd.error().message();

    const uint64_t mark = registry_->LogMark();
    RemotePull(**cd, ref);
    auto log = ReadFile(dir + "/snapshotter.log");
    ASSERT_TRUE(log.has_value());
    for (const Digest& d : layers) {
      EXPECT_NE(log->find(" (" + d.str() + "): mounted lazily from " + sn_root + "/layers/" +
                          std::string(d.hex()) + " "),
                std::string::npos)
          << *log;
    }
    EXPECT_EQ(log->find("not lazy"), std::string::npos) << *log;
    EXPECT_EQ(DirEntries(sn_root + "/snapshots"), std::vector<std::string>{});
    const std::vector<std::string> lines = SnapshotLines(**cd);
    EXPECT_EQ(lines.size(), 2u);
    for (const std::string& line : lines) {
      auto info =
          (*cd)->Ctr({"snapshots", "--snapshotter=hoist", "info", line.substr(0, line.find(' '))});
      ASSERT_TRUE(info.has_value()) << info.error().message();
      EXPECT_NE(info->find("\"containerd.io/snapshot/remote\": \"remote snapshot\""),
                std::string::npos)
          << *info;
    }
    auto content = (*cd)->Ctr({"content", "ls", "-q"});
    ASSERT_TRUE(content.has_value()) << content.error().message();
    for (const Digest& d : layers) {
      EXPECT_EQ(content->find(d.str()), std::string::npos) << *content;
    }

    EXPECT_EQ(RunOutput(**cd, "py", ref, kPython), "42\n");
    ExpectOnlyRangeReads(mark, layers);
    if (media_type.ends_with("+gzip")) {
      // Span ranges, not the blob: no one request of a blob larger than two spans sent all of
      // it (a smaller one may be a single span). The totals are printed: a start may read most
      // of a small image, and overlapping spans may together pass a blob's size.
      auto requests = registry_->Requests(mark);
      ASSERT_TRUE(requests.has_value()) << requests.error().message();
      std::map<std::string, int64_t> sent;
      std::map<std::string, int> gets;
      for (const harness::RegistryRequest& r : *requests) {
        for (const Digest& d : layers) {
          if (!r.IsBlobGet() || r.uri.find(d.str()) == std::string::npos) continue;
          sent[d.str()] += static_cast<int64_t>(r.bytes_written);
          ++gets[d.str()];
          if (sizes[d.str()] > (2 << 20)) {
            EXPECT_LT(static_cast<int64_t>(r.bytes_written), sizes[d.str()])
                << d.str() << ": one request sent the whole gzip blob";
          }
        }
      }
      for (const auto& [digest, size] : sizes) {
        std::printf("%s: %d range requests, %lld bytes sent, blob %lld bytes\n", digest.c_str(),
                    gets[digest], static_cast<long long>(sent[digest]),
                    static_cast<long long>(size));
      }
    }
    ExpectRemovedCompletely(**cd, sn_root, ref);
    ExpectCleanStop(sn, sock);
  }

  // `ctr-remote image rpull --plain-http --snapshotter NAME REF`: the remote-snapshot client.
  static void RemotePull(harness::PrivateContainerd& cd, const std::string& ref,
                         const std::string& snapshotter = "hoist") {
    auto pulled = harness::RunChecked({"ctr-remote", "-a", cd.socket(), "image", "rpull",
                                       "--plain-http", "--snapshotter=" + snapshotter, ref},
                                      {.timeout = std::chrono::seconds(180)});
    ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  }

  // Every GET of a blob in `lazy` since `mark` was a Range request (206), and there was one.
  static void ExpectOnlyRangeReads(uint64_t mark, const std::vector<Digest>& lazy) {
    auto requests = registry_->Requests(mark);
    ASSERT_TRUE(requests.has_value()) << requests.error().message();
    std::map<std::string, int> ranged;
    for (const harness::RegistryRequest& r : *requests) {
      if (!r.IsBlobGet()) continue;
      for (const Digest& d : lazy) {
        if (r.uri.find(d.str()) == std::string::npos) continue;
        EXPECT_EQ(r.status, 206) << "whole-blob download of a lazy layer: " << r.uri;
        ++ranged[d.str()];
      }
    }
    for (const Digest& d : lazy) EXPECT_GT(ranged[d.str()], 0) << d.str();
  }

  // `ctr run --snapshotter hoist --rm REF ID cat ...`: the exact output.
  // The container writes into a bind-mounted host directory: ctr 1.6's own stdout copy loses
  // the output of a short-lived task now and then under load (containerd issue 770's race), and
  // that must not fail a test about the snapshotter.
  static void ExpectRunPrints(harness::PrivateContainerd& cd, const std::string& id,
                              const std::string& ref = Ref(),
                              const std::string& snapshotter = "hoist") {
    EXPECT_EQ(RunOutput(cd, id, ref, "cat /etc/hello /etc/hello2 /data/new", snapshotter),
              kRunOutput);
  }

  // `ctr run --snapshotter NAME --rm REF ID /bin/sh -c 'COMMAND > /out/result'`: the result
  // file's bytes, or "<...>" saying what failed.
  static std::string RunOutput(harness::PrivateContainerd& cd, const std::string& id,
                               const std::string& ref, const std::string& command,
                               const std::string& snapshotter = "hoist") {
    const std::string out_dir = *work_ + "/run-out-" + id + "-" + std::to_string(++run_count_);
    if (!MakeDirs(out_dir)) return "<mkdir " + out_dir + " failed>";
    auto out = cd.Ctr({"run", "--snapshotter=" + snapshotter, "--rm", "--mount",
                       "type=bind,src=" + out_dir + ",dst=/out,options=rbind:rw", ref, id,
                       "/bin/sh", "-c", command + " > /out/result"});
    if (!out) return "<ctr run: " + out.error().message() + ">";
    auto result = ReadFile(out_dir + "/result");
    return result ? *result : "<" + result.error().message() + ">";
  }

  // The image's rootfs through the snapshotter equals umoci's unpack: a container's active
  // snapshot (`ctr container create`; referenced by the container, so containerd's GC leaves it
  // alone, unlike a bare view), mounted with the command `ctr snapshots mounts` prints for the
  // snapshotter's mounts (ctr 1.6's `image mount` cannot pick a snapshotter), walked, unmounted
  // and removed with the container.
  void ExpectExactTree(harness::PrivateContainerd& cd, const std::string& mnt,
                       const std::string& lowerdirs, const std::string& ref = Ref()) {
    ASSERT_TRUE(MakeDirs(mnt).has_value());
    auto c = cd.Ctr({"container", "create", "--snapshotter=hoist", ref, "tree-c"});
    ASSERT_TRUE(c.has_value()) << c.error().message();
    auto cmd = cd.Ctr({"snapshots", "--snapshotter=hoist", "mounts", mnt, "tree-c"});
    ASSERT_TRUE(cmd.has_value()) << cmd.error().message();
    // An overlay whose lower layers are the image's trees, newest first.
    EXPECT_TRUE(cmd->starts_with("mount -t overlay overlay " + mnt + " -o ")) << *cmd;
    EXPECT_TRUE(cmd->ends_with(",lowerdir=" + lowerdirs + "\n")) << *cmd;
    CommandResult m = RunTool({"sh", "-c", *cmd});
    ASSERT_TRUE(m.ok()) << *cmd << ": " << m.stderr_text;
    auto got = harness::WalkTree(mnt);
    EXPECT_EQ(::umount(mnt.c_str()), 0) << std::strerror(errno);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(harness::CompareTrees(*umoci_tree_, *got), std::vector<std::string>{});
    auto rm = cd.Ctr({"container", "rm", "tree-c"});
    ASSERT_TRUE(rm.has_value()) << rm.error().message();
  }

  // After a restart of the snapshotter, containerd's gRPC channel to it reconnects on its own
  // backoff (at most 3 s apart in containerd 1.6): wait until a call goes through.
  static void WaitUntilServed(harness::PrivateContainerd& cd) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      CommandResult r =
          RunTool({"ctr", "-a", cd.socket(), "snapshots", "--snapshotter=hoist", "ls"});
      if (r.ok()) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << r.stderr_text;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // `ctr snapshots --snapshotter NAME ls` without its header line.
  static std::vector<std::string> SnapshotLines(harness::PrivateContainerd& cd,
                                                const std::string& snapshotter = "hoist") {
    auto out = cd.Ctr({"snapshots", "--snapshotter=" + snapshotter, "ls"});
    EXPECT_TRUE(out.has_value()) << out.error().message();
    std::vector<std::string> lines;
    std::string line;
    for (char c : out.value_or("")) {
      if (c != '\n') {
        line += c;
        continue;
      }
      if (!line.starts_with("KEY")) lines.push_back(line);
      line.clear();
    }
    return lines;
  }

  // Image removal with GC: no snapshot left, no snapshot dirs, no layer dirs in the store, no
  // mount under the work dir but the snapshotter's layer store (which goes at SIGTERM).
  void ExpectRemovedCompletely(harness::PrivateContainerd& cd, const std::string& sn_root,
                               const std::string& ref = Ref()) {
    auto rm = cd.Ctr({"image", "rm", "--sync", ref});
    ASSERT_TRUE(rm.has_value()) << rm.error().message();
    EXPECT_EQ(SnapshotLines(cd), std::vector<std::string>{});
    EXPECT_EQ(DirEntries(sn_root + "/snapshots"), std::vector<std::string>{});
    EXPECT_EQ(DirEntries(sn_root + "/layers"), std::vector<std::string>{});
    auto mounts = MountPointsUnder(*work_);
    ASSERT_TRUE(mounts.has_value());
    std::vector<std::string> store;
    if (Exists(sn_root + "/layers")) store.push_back(sn_root + "/layers");
    EXPECT_EQ(*mounts, store);
  }

  // SIGTERM: a clean exit 0 (the ASan build would exit non-zero on a leak or error report), the
  // socket removed, nothing left mounted under the work dir (the layer store unmounted).
  void ExpectCleanStop(SnapshotterProcess& sn, const std::string& sock) {
    ASSERT_TRUE(sn.child().Running());
    sn.Stop();
    ASSERT_TRUE(sn.child().wait_status().has_value());
    const int ws = *sn.child().wait_status();
    EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "wait status " << ws;
    EXPECT_FALSE(Exists(sock));
    auto mounts = MountPointsUnder(*work_);
    ASSERT_TRUE(mounts.has_value());
    EXPECT_EQ(*mounts, std::vector<std::string>{});
  }

  static inline int run_count_ = 0;
  static std::string* setup_error_;
  static std::string* work_;
  static std::string* layout_;
  static inline std::string* py_layout_ = nullptr;
  static harness::TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static Tree* umoci_tree_;
};

std::string* SnapshotterContainerdTest::setup_error_ = nullptr;
std::string* SnapshotterContainerdTest::work_ = nullptr;
std::string* SnapshotterContainerdTest::layout_ = nullptr;
harness::TestRegistry* SnapshotterContainerdTest::registry_ = nullptr;
harness::BuiltImage* SnapshotterContainerdTest::image_ = nullptr;
Tree* SnapshotterContainerdTest::umoci_tree_ = nullptr;

TEST_F(SnapshotterContainerdTest, PullRunTreeRestartAndGc) {
  const std::string dir = NewDir("plain");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  SnapshotterProcess sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log");
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();

  auto pulled = (*cd)->Pull(Ref(), /*plain_http=*/true);
  ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  // Two committed layers, named by their chain IDs, the top one on the base.
  const std::string chain1 = image_->layers[0].diff_id.str();
  const std::string chain2 = Digest::Of(chain1 + " " + image_->layers[1].diff_id.str()).str();
  auto lines = SnapshotLines(**cd);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].starts_with(chain1 + " ")) << lines[0];
  EXPECT_NE(lines[0].find("Committed"), std::string::npos) << lines[0];
  EXPECT_TRUE(lines[1].starts_with(chain2 + " " + chain1 + " ")) << lines[1];
  EXPECT_EQ(DirEntries(sn_root + "/snapshots").size(), 2u);

  // `ctr image pull` of containerd 1.6 Prepares without containerd.io/snapshot.ref: the lazy
  // source is never asked, every layer is ordinary.
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ(log->find("lazily"), std::string::npos) << *log;
  EXPECT_EQ(log->find("not lazy"), std::string::npos) << *log;
  ExpectRunPrints(**cd, "c1");
  ExpectExactTree(**cd, dir + "/mnt", sn_root + "/snapshots/2/fs:" + sn_root + "/snapshots/1/fs");

  // kill -9, then a restart: containers of the already pulled image still start.
  sn.Kill();
  auto restarted = sn.Restart();
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message();
  WaitUntilServed(**cd);
  ExpectRunPrints(**cd, "c2");
  EXPECT_EQ(SnapshotLines(**cd).size(), 2u);  // the run's active snapshot is gone again

  ExpectRemovedCompletely(**cd, sn_root);
  ExpectCleanStop(sn, sock);
}

TEST_F(SnapshotterContainerdTest, LazySeamWithFakeSource) {
  const std::string dir = NewDir("seam");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  const std::string layers = NewDir("seam/layers");
  // Layer 1, pre-extracted as an overlay lower layer (it has no whiteouts, so GNU tar's
  // extraction is exactly that), under its chain ID.
  const std::string chain1 = image_->layers[0].diff_id.str();
  const std::string chain2 = Digest::Of(chain1 + " " + image_->layers[1].diff_id.str()).str();
  std::string name = chain1;
  name[name.find(':')] = '-';
  const std::string tree = layers + "/" + name;
  ASSERT_TRUE(MakeDirs(tree).has_value());
  CommandResult x = RunTool({"tar", "-xpzf", image_->layers[0].blob_path, "--numeric-owner",
                             "--xattrs", "--xattrs-include=*", "-C", tree});
  ASSERT_TRUE(x.ok()) << x.stderr_text;

  SnapshotterProcess sn;
  auto started = sn.Start(FAKE_REMOTE_SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log",
                          {"HOIST_FAKE_LAYER_DIR=" + layers});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();

  // `ctr-remote image rpull` is the non-CRI client of containerd's remote-snapshot protocol (it
  // passes containerd.io/snapshot.ref and stargz's labels, and fetches a layer only when the
  // snapshotter did not serve it). Plain `ctr image pull` of containerd 1.6 fetches every blob
  // and passes no labels, so no remote snapshotter can be lazy with it.
  auto pulled = harness::RunChecked({"ctr-remote", "-a", (*cd)->socket(), "image", "rpull",
                                     "--plain-http", "--snapshotter=hoist", Ref()},
                                    {.timeout = std::chrono::seconds(180)});
  ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  // containerd recorded layer 1 as the snapshotter's remote snapshot...
  auto info = (*cd)->Ctr({"snapshots", "--snapshotter=hoist", "info", chain1});
  ASSERT_TRUE(info.has_value()) << info.error().message();
  EXPECT_NE(info->find("\"containerd.io/snapshot/remote\": \"remote snapshot\""), std::string::npos)
      << *info;
  EXPECT_NE(info->find("\"Kind\": \"Committed\""), std::string::npos) << *info;
  auto info2 = (*cd)->Ctr({"snapshots", "--snapshotter=hoist", "info", chain2});
  ASSERT_TRUE(info2.has_value()) << info2.error().message();
  EXPECT_EQ(info2->find("\"containerd.io/snapshot/remote\":"), std::string::npos) << *info2;
  // ...and never downloaded its blob; layer 2 was downloaded and unpacked as usual.
  auto content = (*cd)->Ctr({"content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  EXPECT_EQ(content->find(image_->layers[0].digest.str()), std::string::npos) << *content;
  EXPECT_NE(content->find(image_->layers[1].digest.str()), std::string::npos) << *content;
  // Only layer 2 has a directory of its own.
  EXPECT_EQ(DirEntries(sn_root + "/snapshots").size(), 1u);
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("layer " + chain1 + " (" + image_->layers[0].digest.str() +
                      "): mounted lazily from " + tree),
            std::string::npos)
      << *log;
  // Layer 2: one line saying why it was not lazy, then the ordinary path.
  EXPECT_NE(log->find("layer " + chain2 + " (" + image_->layers[1].digest.str() +
                      "): not lazy, containerd unpacks it: no pre-extracted tree at " + layers +
                      "/sha256-" + chain2.substr(7) + "\n"),
            std::string::npos)
      << *log;

  ExpectRunPrints(**cd, "c1");
  // Layer 1's lowerdir is the source's tree; layer 2's is the snapshotter's own (id 2: the
  // remote snapshot took id 1).
  ExpectExactTree(**cd, dir + "/mnt", sn_root + "/snapshots/2/fs:" + tree);

  // Restart: the source is asked again for the remote layer; containers still start.
  sn.Kill();
  auto restarted = sn.Restart();
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message();
  WaitUntilServed(**cd);
  ExpectRunPrints(**cd, "c2");

  ExpectRemovedCompletely(**cd, sn_root);
  EXPECT_TRUE(Exists(tree));  // the source's tree is the source's to delete
}

// The real lazy source: zstd:chunked layers served from the layer store at ROOT/layers.
TEST_F(SnapshotterContainerdTest, LazyZstdChunkedThroughTheLayerStore) {
  const std::string dir = NewDir("zstd");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  const std::string ref = registry_->ImageRef("snap/zstd", "v1");
  const std::vector<Digest> layers = LayerDigests(ref);
  ASSERT_EQ(layers.size(), 2u);
  SnapshotterProcess sn;
  // No background prefetch: every byte the registry serves is one a reader asked for.
  // One process (--no-supervisor): its kill -9 ends the store's connection, the path this test
  // covers (SurvivesWorkerKillWithARunningContainer covers the supervised one).
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                          {"--prefetch", "none", "--no-supervisor"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();

  const uint64_t mark = registry_->LogMark();
  RemotePull(**cd, ref);
  // Both layers are remote snapshots whose trees are the store's layer directories...
  const std::string l1 = sn_root + "/layers/" + std::string(layers[0].hex());
  const std::string l2 = sn_root + "/layers/" + std::string(layers[1].hex());
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find(" (" + layers[0].str() + "): mounted lazily from " + l1 + " "),
            std::string::npos)
      << *log;
  EXPECT_NE(log->find(" (" + layers[1].str() + "): mounted lazily from " + l2 + " "),
            std::string::npos)
      << *log;
  EXPECT_EQ(log->find("not lazy"), std::string::npos) << *log;
  EXPECT_EQ(DirEntries(sn_root + "/snapshots"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(sn_root + "/layers"),
            (std::vector<std::string>{std::string(layers[0].hex()), std::string(layers[1].hex())}));
  for (const std::string& line : SnapshotLines(**cd)) {
    const std::string chain = line.substr(0, line.find(' '));
    auto info = (*cd)->Ctr({"snapshots", "--snapshotter=hoist", "info", chain});
    ASSERT_TRUE(info.has_value()) << info.error().message();
    EXPECT_NE(info->find("\"containerd.io/snapshot/remote\": \"remote snapshot\""),
              std::string::npos)
        << *info;
  }
  // ...and containerd downloaded neither blob.
  auto content = (*cd)->Ctr({"content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  for (const Digest& d : layers) EXPECT_EQ(content->find(d.str()), std::string::npos) << *content;

  ExpectRunPrints(**cd, "c1", ref);
  ExpectExactTree(**cd, dir + "/mnt", l2 + ":" + l1, ref);
  // Whatever the pull and the runs read came by Range requests.
  ExpectOnlyRangeReads(mark, layers);
  // `hoist stats` finds the store's state file.
  CommandResult stats = RunTool({HOIST_BINARY, "stats", sn_root + "/layers"});
  ASSERT_TRUE(stats.ok()) << stats.stderr_text;
  EXPECT_TRUE(stats.stdout_text.starts_with("mountpoint        " + sn_root +
                                            "/layers\nimage             layers\n"))
      << stats.stdout_text;

  // kill -9: the store's FUSE connection dies with the process; the restart detaches the dead
  // mount, mounts a new store on the same path and adds the layers again.
  sn.Kill();
  auto restarted = sn.Restart();
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message();
  WaitUntilServed(**cd);
  ExpectRunPrints(**cd, "c2", ref);
  log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("detached the dead layer store mount at " + sn_root + "/layers"),
            std::string::npos)
      << *log;
  EXPECT_EQ(log->find("restoring the lazy tree failed"), std::string::npos) << *log;

  ExpectRemovedCompletely(**cd, sn_root, ref);
  ExpectCleanStop(sn, sock);
}

// The lines of `path` (empty when it cannot be read).
std::vector<std::string> FileLines(const std::string& path) {
  std::vector<std::string> out;
  std::string line;
  for (char c : ReadFile(path).value_or("")) {
    if (c == '\n') {
      out.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  return out;
}

// Waits (at most `timeout`) until `done()`; false at the deadline.
template <class F>
bool WaitFor(F done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

void DropKernelCaches() {
  ::sync();
  const int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(::write(fd, "3\n", 2), 2) << std::strerror(errno);
  ::close(fd);
}

// The supervised daemon (the default): a container runs on lazy layers and reads them in a loop;
// the WORKER is killed with SIGKILL; the supervisor starts a new one that takes the layer store's
// live connection over. The kernel's caches are dropped while nobody serves, so the container's
// next reads and lookups wait for the new worker. The container keeps running, every iteration
// of its loop (before, across and after the kill) read the exact bytes with no error, the loop
// went on after the restart, and a NEW container of the same image starts.
TEST_F(SnapshotterContainerdTest, SurvivesWorkerKillWithARunningContainer) {
  const std::string dir = NewDir("survive");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  const std::string out = dir + "/out";
  ASSERT_TRUE(MakeDirs(out).has_value());
  const std::string ref = registry_->ImageRef("snap/zstd", "v1");
  SnapshotterProcess sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                          {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  RemotePull(**cd, ref);

  // Each iteration: "<n> <sha256 of three files of both layers> <sha256 of busybox>"; errors go
  // to /out/err.
  const std::string loop =
      "i=0; while true; do i=$((i+1)); "
      "a=$(cat /etc/hello /etc/hello2 /data/new | busybox sha256sum); "
      "b=$(busybox sha256sum < /bin/busybox); "
      "echo \"$i ${a%% *} ${b%% *}\" >> /out/log; busybox sleep 0.05; done 2>> /out/err";
  auto run = (*cd)->Ctr({"run", "-d", "--snapshotter=hoist", "--mount",
                         "type=bind,src=" + out + ",dst=/out,options=rbind:rw", ref, "reader",
                         "/bin/sh", "-c", loop});
  ASSERT_TRUE(run.has_value()) << run.error().message();
  auto running = [&] {
    auto tasks = (*cd)->Ctr({"task", "ls"});
    return tasks.has_value() && tasks->find("RUNNING") != std::string::npos;
  };
  ASSERT_TRUE(
      WaitFor([&] { return FileLines(out + "/log").size() >= 5; }, std::chrono::seconds(60)))
      << ReadFile(out + "/err").value_or("");

  auto pid_text = ReadFile(sn_root + "/snapshotter.pid");
  ASSERT_TRUE(pid_text.has_value()) << pid_text.error().message();
  const pid_t worker = static_cast<pid_t>(std::stol(*pid_text));
  ASSERT_GT(worker, 0);
  ASSERT_NE(worker, sn.child().pid());  // the worker, not the supervisor
  const size_t before = FileLines(out + "/log").size();
  ASSERT_EQ(::kill(worker, SIGKILL), 0) << std::strerror(errno);
  DropKernelCaches();
  // A new worker serves: its pid is on file and containerd's calls go through.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto now = ReadFile(sn_root + "/snapshotter.pid");
        return now.has_value() && !now->empty() && std::stol(*now) != worker && SocketAnswers(sock);
      },
      std::chrono::seconds(60)));
  WaitUntilServed(**cd);
  DropKernelCaches();
  // The container's loop went on past the kill.
  EXPECT_TRUE(WaitFor([&] { return FileLines(out + "/log").size() >= before + 20; },
                      std::chrono::seconds(60)))
      << FileLines(out + "/log").size() << " lines, " << before << " before the kill";
  EXPECT_TRUE(running()) << (*cd)->Ctr({"task", "ls"}).value_or("");

  // Every iteration read exact bytes, none failed.
  auto busybox = ReadFile("/bin/busybox");
  ASSERT_TRUE(busybox.has_value());
  const std::string files = Digest::Of("from layer 1\nfrom layer 2\nnew\n").hex();
  const std::string bin = Digest::Of(*busybox).hex();
  const std::vector<std::string> lines = FileLines(out + "/log");
  ASSERT_FALSE(lines.empty());
  for (size_t i = 0; i + 1 < lines.size(); ++i) {  // the last line may be half written
    EXPECT_EQ(lines[i], std::to_string(i + 1) + " " + files + " " + bin);
  }
  EXPECT_EQ(ReadFile(out + "/err").value_or("<unreadable>"), "");

  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("took the FUSE connection over (2 layer slots on record)"), std::string::npos)
      << *log;
  EXPECT_NE(log->find("serving the taken-over connection, 2 layers"), std::string::npos) << *log;
  EXPECT_EQ(log->find("restoring the lazy tree failed"), std::string::npos) << *log;
  EXPECT_EQ(log->find("detached the dead layer store mount"), std::string::npos) << *log;

  // A new container of the same image starts and reads exactly.
  ExpectRunPrints(**cd, "after", ref);

  auto killed = (*cd)->Ctr({"task", "kill", "-s", "SIGKILL", "reader"});
  ASSERT_TRUE(killed.has_value()) << killed.error().message();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto tasks = (*cd)->Ctr({"task", "ls"});
        return tasks.has_value() && tasks->find("RUNNING") == std::string::npos;
      },
      std::chrono::seconds(30)));
  auto task_rm = (*cd)->Ctr({"task", "rm", "reader"});
  EXPECT_TRUE(task_rm.has_value()) << task_rm.error().message();
  auto c_rm = (*cd)->Ctr({"container", "rm", "reader"});
  ASSERT_TRUE(c_rm.has_value()) << c_rm.error().message();
  ExpectRemovedCompletely(**cd, sn_root, ref);
  ExpectCleanStop(sn, sock);
}

// An eStargz image made by ctr-remote (in a containerd of its own) and pushed to the registry.
TEST_F(SnapshotterContainerdTest, LazyEstargzByCtrRemote) {
  const std::string dir = NewDir("esgz");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  const std::string ref = registry_->ImageRef("snap/esgz", "v1");
  ASSERT_NO_FATAL_FAILURE(ConvertByCtrRemote("esgz/conv", *layout_, "v1", {"--estargz"}, ref));
  const std::vector<Digest> layers = LayerDigests(ref);
  ASSERT_EQ(layers.size(), 2u);

  SnapshotterProcess sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                          {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  const uint64_t mark = registry_->LogMark();
  RemotePull(**cd, ref);
  const std::string l1 = sn_root + "/layers/" + std::string(layers[0].hex());
  const std::string l2 = sn_root + "/layers/" + std::string(layers[1].hex());
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NE(log->find(" (" + layers[i].str() + "): mounted lazily from " + (i ? l2 : l1)),
              std::string::npos)
        << *log;
  }
  auto content = (*cd)->Ctr({"content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  for (const Digest& d : layers) EXPECT_EQ(content->find(d.str()), std::string::npos) << *content;
  ExpectRunPrints(**cd, "c1", ref);
  // ctr-remote's landmark and TOC entries are not in the layer views.
  ExpectExactTree(**cd, dir + "/mnt", l2 + ":" + l1, ref);
  ExpectOnlyRangeReads(mark, layers);
  ExpectRemovedCompletely(**cd, sn_root, ref);
  ExpectCleanStop(sn, sock);
}

// One plain gzip layer (containerd downloads and unpacks it) under a zstd:chunked one (lazy).
TEST_F(SnapshotterContainerdTest, MixedGzipAndZstdChunked) {
  const std::string dir = NewDir("mixed");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  const std::string ref = registry_->ImageRef("snap/mixed", "v1");
  // The zstd:chunked image with its first layer (and diff ID) replaced by the gzip original.
  CommandResult copy =
      RunTool({"skopeo", "copy", "--src-tls-verify=false", registry_->DockerRef("snap/zstd", "v1"),
               "oci:" + dir + "/layout:v1"});
  ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  const std::string script = R"(
import hashlib, json, shutil, sys
m, g = sys.argv[1], sys.argv[2]
def blob(l, d): return open(l + "/blobs/sha256/" + d[7:], "rb").read()
def put(l, b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(l + "/blobs/sha256/" + d[7:], "wb").write(b)
    return d
gi = json.load(open(g + "/index.json"))
gm = json.loads(blob(g, gi["manifests"][0]["digest"]))
gc = json.loads(blob(g, gm["config"]["digest"]))
mi = json.load(open(m + "/index.json"))
mm = json.loads(blob(m, mi["manifests"][0]["digest"]))
mc = json.loads(blob(m, mm["config"]["digest"]))
mm["layers"][0] = gm["layers"][0]
mc["rootfs"]["diff_ids"][0] = gc["rootfs"]["diff_ids"][0]
shutil.copy(g + "/blobs/sha256/" + gm["layers"][0]["digest"][7:], m + "/blobs/sha256/")
cb = json.dumps(mc).encode()
mm["config"]["digest"], mm["config"]["size"] = put(m, cb), len(cb)
mb = json.dumps(mm).encode()
mi["manifests"][0]["digest"], mi["manifests"][0]["size"] = put(m, mb), len(mb)
json.dump(mi, open(m + "/index.json", "w"))
)";
  CommandResult mix = RunTool({"python3", "-c", script, dir + "/layout", *layout_});
  ASSERT_TRUE(mix.ok()) << mix.stderr_text;
  ASSERT_TRUE(
      harness::PushOciLayout("oci:" + dir + "/layout:v1", registry_->DockerRef("snap/mixed", "v1"))
          .has_value());
  const std::vector<Digest> layers = LayerDigests(ref);
  ASSERT_EQ(layers.size(), 2u);
  ASSERT_EQ(layers[0], image_->layers[0].digest);

  SnapshotterProcess sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                          {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  RemotePull(**cd, ref);
  const std::string l2 = sn_root + "/layers/" + std::string(layers[1].hex());
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  // The gzip layer: one line saying why, then containerd's own download and unpack.
  const std::string fallback = " (" + layers[0].str() + "): not lazy, containerd unpacks it: ";
  const size_t at = log->find(fallback);
  ASSERT_NE(at, std::string::npos) << *log;
  const std::string line = log->substr(at, log->find('\n', at) - at);
  EXPECT_NE(line.find("without a TOC"), std::string::npos) << line;
  EXPECT_NE(log->find(" (" + layers[1].str() + "): mounted lazily from " + l2 + " "),
            std::string::npos)
      << *log;
  auto content = (*cd)->Ctr({"content", "ls", "-q"});
  ASSERT_TRUE(content.has_value()) << content.error().message();
  // containerd 1.6's unpacker, once it must fetch layer i, fetches layers[i:] (unpacker.go), so
  // the zstd:chunked blob above the gzip one is downloaded too although it is served lazily.
  EXPECT_NE(content->find(layers[0].str()), std::string::npos) << *content;
  EXPECT_NE(content->find(layers[1].str()), std::string::npos) << *content;
  // Snapshot 1 is the unpacked gzip layer (the remote one took id 2).
  EXPECT_EQ(DirEntries(sn_root + "/snapshots"), std::vector<std::string>{"1"});
  ExpectRunPrints(**cd, "c1", ref);
  ExpectExactTree(**cd, dir + "/mnt", l2 + ":" + sn_root + "/snapshots/1/fs", ref);
  ExpectRemovedCompletely(**cd, sn_root, ref);
  ExpectCleanStop(sn, sock);
}

// Credentials come from the daemon's docker config and are read at each resolve: a registry
// with basic auth, the config first without an entry (the layers fall back, one line each),
// then with one, written while the daemon runs: the next pull is lazy, without a restart.
TEST_F(SnapshotterContainerdTest, CredentialsAreReadAnewFromTheDockerConfig) {
  const std::string dir = NewDir("creds");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  auto auth = harness::TestRegistry::Launch({.auth = harness::RegistryAuthMode::kBasic});
  ASSERT_TRUE(auth.has_value()) << auth.error().message();
  CommandResult copy =
      RunTool({"skopeo", "copy", "--src-tls-verify=false", registry_->DockerRef("snap/zstd", "v1"),
               "oci:" + dir + "/layout:v1"});
  ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  ASSERT_TRUE(harness::PushOciLayout("oci:" + dir + "/layout:v1",
                                     (*auth)->DockerRef("snap/zstd", "v1"),
                                     {.creds = (*auth)->skopeo_creds()})
                  .has_value());
  const std::string ref = (*auth)->ImageRef("snap/zstd", "v1");
  const std::vector<Digest> layers = LayerDigests(registry_->ImageRef("snap/zstd", "v1"));
  ASSERT_EQ(layers.size(), 2u);

  const std::string docker_config = NewDir("creds/docker");
  ASSERT_TRUE(WriteFileAtomic(docker_config + "/config.json", "{\"auths\": {}}\n").has_value());
  SnapshotterProcess sn;
  auto started =
      sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log",
               {"DOCKER_CONFIG=" + docker_config, "REGISTRY_AUTH_FILE="}, {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  auto rpull = [&] {
    auto pulled =
        harness::RunChecked({"ctr-remote", "-a", (*cd)->socket(), "image", "rpull", "--plain-http",
                             "--user", (*auth)->skopeo_creds(), "--snapshotter=hoist", ref},
                            {.timeout = std::chrono::seconds(180)});
    ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  };

  // No credentials for the registry: both layers fall back, containerd (given --user) unpacks.
  rpull();
  auto log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  for (const Digest& d : layers) {
    EXPECT_NE(log->find(" (" + d.str() + "): not lazy, containerd unpacks it: " +
                        (*auth)->host_port() + "/snap/zstd: manifest v1: 401 Unauthorized"),
              std::string::npos)
        << *log;
  }
  EXPECT_EQ(log->find("mounted lazily"), std::string::npos) << *log;
  ExpectRunPrints(**cd, "c1", ref);
  auto rm = (*cd)->Ctr({"image", "rm", "--sync", ref});
  ASSERT_TRUE(rm.has_value()) << rm.error().message();
  EXPECT_EQ(SnapshotLines(**cd), std::vector<std::string>{});

  // `docker login` while the daemon runs: the next pull is lazy.
  ASSERT_TRUE(WriteFileAtomic(docker_config + "/config.json",
                              "{\"auths\": {\"" + (*auth)->host_port() + "\": {\"auth\": \"" +
                                  Base64Encode((*auth)->skopeo_creds()) + "\"}}}\n")
                  .has_value());
  rpull();
  log = ReadFile(dir + "/snapshotter.log");
  ASSERT_TRUE(log.has_value());
  for (const Digest& d : layers) {
    EXPECT_NE(log->find(" (" + d.str() + "): mounted lazily from " + sn_root + "/layers/" +
                        std::string(d.hex()) + " "),
              std::string::npos)
        << *log;
  }
  ExpectRunPrints(**cd, "c2", ref);
  ExpectRemovedCompletely(**cd, sn_root, ref);
  ExpectCleanStop(sn, sock);
}

// The python image as zstd:chunked by skopeo (PushPythonBySkopeo), pulled and run lazily.
TEST_F(SnapshotterContainerdTest, LazyPythonZstdChunkedBySkopeo) {
  ASSERT_NO_FATAL_FAILURE(PushPythonBySkopeo());
  ExpectLazyPythonRun("py-skopeo", PythonBySkopeoRef());
}

// The python image as zstd:chunked by `ctr-remote image convert --zstdchunked`, pulled and run
// lazily.
TEST_F(SnapshotterContainerdTest, LazyPythonZstdChunkedByCtrRemote) {
  ASSERT_NO_FATAL_FAILURE(BuildPythonLayout());
  const std::string ref = registry_->ImageRef("snap/py-ctr-remote", "v1");
  ASSERT_NO_FATAL_FAILURE(
      ConvertByCtrRemote("py-ctr-remote/conv", *py_layout_, "py", {"--zstdchunked"}, ref));
  ExpectLazyPythonRun("py-ctr-remote", ref);
}

// The python image as plain gzip layers (never converted). Without an index anywhere (none in
// the host store, none published) each layer falls back: one "not lazy" line, and containerd
// downloads (whole) and unpacks it; the container still prints exactly. Once `hoist index` has
// published the image's layer indexes, a fresh snapshotter and containerd pull it lazily: both
// layers are remote snapshots, no layer blob is in the content store, the registry sent each
// gzip blob by Range only, span by span (no one request sent the larger blob whole).
TEST_F(SnapshotterContainerdTest, LazyPythonGzipWithAPublishedIndex) {
  ASSERT_NO_FATAL_FAILURE(BuildPythonLayout());
  const std::string ref = registry_->ImageRef("snap/py-gzip", "v1");
  ASSERT_TRUE(harness::PushOciLayout("oci:" + *py_layout_ + ":py",
                                     registry_->DockerRef("snap/py-gzip", "v1"))
                  .has_value());
  const std::vector<Digest> layers = LayerDigests(ref);
  ASSERT_EQ(layers.size(), 2u);
  {
    const std::string dir = NewDir("py-gzip-no-index");
    const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
    SnapshotterProcess sn;
    auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                            {"--prefetch", "none"});
    ASSERT_TRUE(started.has_value()) << started.error().message();
    ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
    auto cd = harness::PrivateContainerd::Start(
        dir + "/cd", {.extra_config = ProxyConfig(sock), .snapshotter = "hoist"});
    ASSERT_TRUE(cd.has_value()) << cd.error().message();
    const uint64_t mark = registry_->LogMark();
    RemotePull(**cd, ref);
    auto log = ReadFile(dir + "/snapshotter.log");
    ASSERT_TRUE(log.has_value());
    for (const Digest& d : layers) {
      const std::string fallback = " (" + d.str() + "): not lazy, containerd unpacks it: ";
      const size_t at = log->find(fallback);
      ASSERT_NE(at, std::string::npos) << *log;
      const std::string line = log->substr(at, log->find('\n', at) - at);
      EXPECT_NE(line.find("none is published next to the image"), std::string::npos) << line;
    }
    auto content = (*cd)->Ctr({"content", "ls", "-q"});
    ASSERT_TRUE(content.has_value()) << content.error().message();
    auto requests = registry_->Requests(mark);
    ASSERT_TRUE(requests.has_value()) << requests.error().message();
    for (const Digest& d : layers) {
      EXPECT_NE(content->find(d.str()), std::string::npos) << *content;
      int whole = 0;
      for (const harness::RegistryRequest& r : *requests)
        whole += r.IsBlobGet() && r.uri.find(d.str()) != std::string::npos && r.status == 200;
      EXPECT_EQ(whole, 1) << d.str();
    }
    EXPECT_EQ(RunOutput(**cd, "py", ref, kPython), "42\n");
    ExpectRemovedCompletely(**cd, sn_root, ref);
    ExpectCleanStop(sn, sock);
  }
  CommandResult indexed = RunTool({HOIST_BINARY, "index", ref});
  ASSERT_TRUE(indexed.ok()) << indexed.stderr_text;
  EXPECT_NE(indexed.stdout_text.find("Published 2 layer indexes"), std::string::npos)
      << indexed.stdout_text;
  ExpectLazyPythonRun("py-gzip", ref, "application/vnd.oci.image.layer.v1.tar+gzip");
}

// containerd 1.6 garbage-collects per snapshotter NAME (metadata/snapshot.go, garbageCollect):
// after a removal under a name, it walks that name's backend and removes every snapshot that
// this name's metadata does not list. So ONE hoist-snapshotter registered under two names
// (hoist, hoist2) is one backend under two sets of metadata, and removing an image under one
// name deletes the other name's snapshots: the documented limit (one backend serves one plugin
// name), shown exactly. `ctr image rm --sync` of the image pulled under "hoist" leaves "hoist2"
// with containerd records whose snapshots are gone: its list is empty (containerd skips records
// the backend does not know), its layers are gone from the store, its image no longer starts.
TEST_F(SnapshotterContainerdTest, TwoNamesOnOneBackendLoseEachOthersSnapshots) {
  const std::string dir = NewDir("names-one");
  const std::string sn_root = dir + "/sn-root", sock = dir + "/sn.sock";
  // Two images with no layer in common (one image's config would keep both names' snapshots).
  const std::string py_ref = PythonBySkopeoRef();
  ASSERT_NO_FATAL_FAILURE(PushPythonBySkopeo());
  SnapshotterProcess sn;
  auto started = sn.Start(SNAPSHOTTER_BINARY, sn_root, sock, dir + "/snapshotter.log", {},
                          {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd",
      {.extra_config = ProxyConfig({{"hoist", sock}, {"hoist2", sock}}), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  // The gzip image, unpacked, under "hoist"; the zstd:chunked python one, lazy, under "hoist2". (No
  // container runs before the removal: removing its snapshot would start the same GC.)
  auto pulled = (*cd)->Pull(Ref(), /*plain_http=*/true);
  ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  RemotePull(**cd, py_ref, "hoist2");
  EXPECT_EQ(SnapshotLines(**cd, "hoist").size(), 2u);
  EXPECT_EQ(SnapshotLines(**cd, "hoist2").size(), 2u);
  EXPECT_EQ(DirEntries(sn_root + "/snapshots").size(), 2u);
  EXPECT_EQ(DirEntries(sn_root + "/layers").size(), 2u);

  auto rm = (*cd)->Ctr({"image", "rm", "--sync", Ref()});
  ASSERT_TRUE(rm.has_value()) << rm.error().message();
  EXPECT_EQ(SnapshotLines(**cd, "hoist"), std::vector<std::string>{});
  EXPECT_EQ(SnapshotLines(**cd, "hoist2"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(sn_root + "/snapshots"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(sn_root + "/layers"), std::vector<std::string>{});
  const std::string run = RunOutput(**cd, "c1", py_ref, kPython, "hoist2");
  EXPECT_TRUE(run.starts_with("<ctr run: ")) << run;
  EXPECT_NE(run.find("not found"), std::string::npos) << run;

  auto rm2 = (*cd)->Ctr({"image", "rm", "--sync", py_ref});
  ASSERT_TRUE(rm2.has_value()) << rm2.error().message();
  ExpectCleanStop(sn, sock);
}

// The safe configuration: two daemons with two roots under two names. Each name's GC leaves the
// other's snapshots as they were, and both images still run.
TEST_F(SnapshotterContainerdTest, TwoNamesOnTwoDaemonsKeepEachOthersSnapshots) {
  const std::string dir = NewDir("names-two");
  const std::string root1 = dir + "/root1", sock1 = dir + "/sn1.sock";
  const std::string root2 = dir + "/root2", sock2 = dir + "/sn2.sock";
  // Two images with no layer in common (one image's config would keep both names' snapshots).
  const std::string py_ref = PythonBySkopeoRef();
  ASSERT_NO_FATAL_FAILURE(PushPythonBySkopeo());
  SnapshotterProcess sn1, sn2;
  auto started =
      sn1.Start(SNAPSHOTTER_BINARY, root1, sock1, dir + "/sn1.log", {}, {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  started =
      sn2.Start(SNAPSHOTTER_BINARY, root2, sock2, dir + "/sn2.log", {}, {"--prefetch", "none"});
  ASSERT_TRUE(started.has_value()) << started.error().message();
  ASSERT_TRUE(MakeDirs(dir + "/cd").has_value());
  auto cd = harness::PrivateContainerd::Start(
      dir + "/cd",
      {.extra_config = ProxyConfig({{"hoist", sock1}, {"hoist2", sock2}}), .snapshotter = "hoist"});
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  auto pulled = (*cd)->Pull(Ref(), /*plain_http=*/true);
  ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  RemotePull(**cd, py_ref, "hoist2");
  ExpectRunPrints(**cd, "c1", Ref(), "hoist");
  EXPECT_EQ(RunOutput(**cd, "c2", py_ref, kPython, "hoist2"), "42\n");
  const std::vector<std::string> lines2 = SnapshotLines(**cd, "hoist2");
  EXPECT_EQ(lines2.size(), 2u);
  EXPECT_EQ(DirEntries(root2 + "/layers").size(), 2u);

  // "hoist"'s GC: its own snapshots go, "hoist2"'s stay and its image runs.
  auto rm = (*cd)->Ctr({"image", "rm", "--sync", Ref()});
  ASSERT_TRUE(rm.has_value()) << rm.error().message();
  EXPECT_EQ(SnapshotLines(**cd, "hoist"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(root1 + "/snapshots"), std::vector<std::string>{});
  EXPECT_EQ(SnapshotLines(**cd, "hoist2"), lines2);
  EXPECT_EQ(DirEntries(root2 + "/layers").size(), 2u);
  EXPECT_EQ(RunOutput(**cd, "c3", py_ref, kPython, "hoist2"), "42\n");

  // "hoist2"'s GC: its own go, "hoist"'s (pulled again) stay and its image runs.
  pulled = (*cd)->Pull(Ref(), /*plain_http=*/true);
  ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
  const std::vector<std::string> lines1 = SnapshotLines(**cd, "hoist");
  EXPECT_EQ(lines1.size(), 2u);
  rm = (*cd)->Ctr({"image", "rm", "--sync", py_ref});
  ASSERT_TRUE(rm.has_value()) << rm.error().message();
  EXPECT_EQ(SnapshotLines(**cd, "hoist2"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(root2 + "/layers"), std::vector<std::string>{});
  EXPECT_EQ(DirEntries(root2 + "/snapshots"), std::vector<std::string>{});
  EXPECT_EQ(SnapshotLines(**cd, "hoist"), lines1);
  EXPECT_EQ(DirEntries(root1 + "/snapshots").size(), 2u);
  ExpectRunPrints(**cd, "c4", Ref(), "hoist");

  // The second daemon stops cleanly (exit 0, socket removed); then the first name's image goes
  // completely and its daemon stops cleanly too.
  sn2.Stop();
  ASSERT_TRUE(sn2.child().wait_status().has_value());
  const int ws = *sn2.child().wait_status();
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "wait status " << ws;
  EXPECT_FALSE(Exists(sock2));
  ExpectRemovedCompletely(**cd, root1, Ref());
  ExpectCleanStop(sn1, sock1);
}

// Bad flags and unusable paths: one line naming the problem, exit 1; a second daemon on a live
// socket is refused, a stale socket (left by kill -9) is taken over.
TEST(SnapshotterFlags, BadInputIsOneLineError) {
  char templ[] = "/tmp/hoist-snap-flags-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ, sock = dir + "/s.sock", root = dir + "/root";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{}, "--address is required"},
           {{"--address", "rel.sock", "--root", root},
            "--address must be an absolute socket path, not 'rel.sock'"},
           {{"--address", sock, "--root", "rel"},
            "the snapshotter root must be an absolute path, not 'rel'"},
           {{"--address", sock, "--root", root, "--log-level", "loud"},
            "unknown --log-level 'loud'"},
           {{"--address", sock, "--root", root, "--prefetch", "sometimes"},
            "--prefetch sometimes: expected none, priority or all"},
           {{"--address", "/etc/hostname", "--root", root},
            "/etc/hostname exists and is not a socket"},
       }) {
    std::vector<std::string> argv = {SNAPSHOTTER_BINARY};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    CommandResult r = RunTool(argv);
    EXPECT_EQ(r.exit_code, 1) << c.message;
    EXPECT_EQ(r.stderr_text, "hoist-snapshotter: " + c.message + "\n");
  }
  SnapshotterProcess first;
  auto started = first.Start(SNAPSHOTTER_BINARY, root, sock, dir + "/first.log");
  ASSERT_TRUE(started.has_value()) << started.error().message();
  CommandResult second = RunTool({SNAPSHOTTER_BINARY, "--address", sock, "--root", dir + "/r2"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_EQ(second.stderr_text, "hoist-snapshotter: another process is serving " + sock + "\n");
  first.Kill();  // the socket file stays behind
  EXPECT_TRUE(Exists(sock));
  auto again = first.Restart();
  EXPECT_TRUE(again.has_value()) << again.error().message();
  first.Stop();
  EXPECT_FALSE(Exists(sock)) << ReadFile(dir + "/first.log").value_or("");  // a clean stop
  (void)RemoveTree(dir);
}

// --mirror-connect-timeout (as hoist's flag and hoistfs's -o mirror_connect_timeout=): listed in
// --help, checked (0..3600000 ms, 0 = the default), and parsed into the daemon's configuration
// (the fake-source binary writes what its factory was given). The mapping on to the layer
// store's mount options is covered by layer_store_source_test.
TEST(SnapshotterFlags, MirrorConnectTimeout) {
  char templ[] = "/tmp/hoist-snap-mirror-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ, sock = dir + "/s.sock", root = dir + "/root";
  CommandResult help = RunTool({SNAPSHOTTER_BINARY, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.stdout_text.find("--mirror-connect-timeout"), std::string::npos)
      << help.stdout_text;
  for (const std::string bad : {"soon", "-5", "3600001"}) {
    CommandResult r = RunTool(
        {SNAPSHOTTER_BINARY, "--address", sock, "--root", root, "--mirror-connect-timeout", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_TRUE(r.stderr_text.starts_with("hoist-snapshotter: ")) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("--mirror-connect-timeout"), std::string::npos) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find(bad), std::string::npos) << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
  }
  const std::string dump = dir + "/config.txt";
  CommandResult r = harness::RunForResult(
      {FAKE_REMOTE_SNAPSHOTTER_BINARY, "--no-supervisor", "--address", sock, "--root", root,
       "--hosts-dir", dir + "/certs.d", "--mirror-connect-timeout", "250"},
      {.timeout = std::chrono::seconds(60), .env = {"HOIST_FAKE_DUMP_CONFIG=" + dump}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stderr_text, "hoist-snapshotter: configuration written to " + dump + "\n");
  EXPECT_EQ(ReadFile(dump).value_or(""), "hosts_dir=" + dir +
                                             "/certs.d\nregistries_conf=\n"
                                             "mirror_connect_timeout_ms=250\n");
  (void)RemoveTree(dir);
}

// Readiness for systemd's Type=notify: READY=1 arrives on $NOTIFY_SOCKET, and by then the
// daemon's socket answers. Before it, the layer store's connection went to systemd's fd store
// (FDSTORE=1: its state, its slot log, the FUSE fd, in that order).
TEST(SnapshotterFlags, NotifiesSystemdWhenServing) {
  char templ[] = "/tmp/hoist-snap-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ, notify = dir + "/notify.sock", sock = dir + "/s.sock";
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  harness::ChildProcess::Options o;
  o.env = {"NOTIFY_SOCKET=" + notify};
  o.stderr_path = dir + "/log";
  auto child = harness::ChildProcess::Start(
      {SNAPSHOTTER_BINARY, "--address", sock, "--root", dir + "/root"}, o);
  ASSERT_TRUE(child.has_value()) << child.error().message();
  std::vector<std::string> got;
  while (got.empty() || got.back() != "READY=1") {
    pollfd pfd{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 60000), 1) << "no notification within 60 s";
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);  // the fds passed along are dropped
    ASSERT_GT(n, 0);
    got.emplace_back(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(got, (std::vector<std::string>{"FDSTORE=1\nFDNAME=layers-state",
                                           "FDSTORE=1\nFDNAME=layers-slots",
                                           "FDSTORE=1\nFDNAME=layers-fuse", "READY=1"}));
  EXPECT_TRUE(SocketAnswers(sock));
  child->Terminate();
  (void)RemoveTree(dir);
}

// systemd/hoist-snapshotter.service passes `systemd-analyze verify` with the built binary as
// /usr/local/bin/hoist-snapshotter (bind-mounted in a private mount namespace); the check fails
// for a unit whose program is missing.
TEST(SnapshotterUnitFile, SystemdAnalyzeVerifies) {
  ASSERT_TRUE(harness::RequirePrograms({"systemd-analyze", "unshare"}).has_value());
  char templ[] = "/tmp/hoist-snap-unit-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ, bin = dir + "/bin", units = dir + "/units";
  ASSERT_TRUE(MakeDirs(bin).has_value());
  ASSERT_TRUE(MakeDirs(units).has_value());
  ASSERT_EQ(::symlink(SNAPSHOTTER_BINARY, (bin + "/hoist-snapshotter").c_str()), 0);
  auto text = ReadFile(std::string(HOIST_SOURCE_DIR) + "/systemd/hoist-snapshotter.service");
  ASSERT_TRUE(text.has_value()) << text.error().message();
  ASSERT_TRUE(WriteFileAtomic(units + "/hoist-snapshotter.service", *text).has_value());
  auto verify = [&] {
    return RunTool({"unshare", "--mount", "--propagation", "private", "sh", "-euc",
                    "mount --bind " + bin + " /usr/local/bin\ncd " + units +
                        "\nsystemd-analyze verify hoist-snapshotter.service\n"});
  };
  CommandResult r = verify();
  EXPECT_EQ(r.exit_code, 0) << r.Describe() << ": " << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  std::string broken = *text;
  const size_t at = broken.find("/usr/local/bin/hoist-snapshotter ");
  ASSERT_NE(at, std::string::npos);
  broken.replace(at, 32, "/usr/local/bin/hoist-snapshotterx");
  ASSERT_TRUE(WriteFileAtomic(units + "/hoist-snapshotter.service", broken).has_value());
  r = verify();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("/usr/local/bin/hoist-snapshotterx"), std::string::npos)
      << r.stderr_text;
  (void)RemoveTree(dir);
}

}  // namespace
}  // namespace hoist
