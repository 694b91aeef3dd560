// Registry mirrors against real parts: two real distribution registries, one configured as the
// other's mirror through containerd's hosts.toml and through containers' registries.conf, a
// mirror that lacks blobs, one that serves wrong bytes, one that is down (refusing, and not
// answering the connect), distribution's own pull-through cache (`proxy: remoteurl:`), and the
// `hoist` CLI's --hosts-dir / --registries-conf and a hoistfs mount (-o hosts_dir=), including a
// chunk the mirror serves wrong and hoistfs refetches from the upstream. Each registry's own
// request log says which host served what.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "fetcher/credentials.h"
#include "fetcher/curl_transport.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "fetcher/url.h"
#include "index/zstd_chunked.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"

namespace hoist {
namespace {

using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;
using harness::TestRegistry;

constexpr uint64_t kBigSize = 700 * 1024 + 3;

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-mirror-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

// "GET /v2/...?... 200" per request the registry logged since `mark`, once `count` are there.
std::multiset<std::string> Seen(const TestRegistry& reg, uint64_t mark, size_t count) {
  std::multiset<std::string> out;
  harness::WaitUntil([&] {
    out.clear();
    auto reqs = reg.Requests(mark);
    if (!reqs) return false;
    for (const auto& r : *reqs) {
      if (r.uri == "/v2/" || r.uri == "/v2") continue;  // liveness probes
      out.insert(r.method + " " + r.uri + " " + std::to_string(r.status));
    }
    return out.size() >= count;
  });
  return out;
}

// "METHOD URI STATUS" of the requests logged since `mark` whose URI contains `needle`, once one
// equal to `until` is there ("" = at once).
std::vector<std::string> SeenFor(const TestRegistry& reg, uint64_t mark, const std::string& needle,
                                 const std::string& until = "") {
  std::vector<std::string> out;
  harness::WaitUntil([&] {
    out.clear();
    auto reqs = reg.Requests(mark);
    if (!reqs) return false;
    bool found = until.empty();
    for (const auto& r : *reqs) {
      if (r.uri.find(needle) == std::string::npos) continue;
      out.push_back(r.method + " " + r.uri + " " + std::to_string(r.status));
      if (out.back() == until) found = true;
    }
    return found;
  });
  return out;
}

// A free TCP port on 127.0.0.1 (bound, read and released: the caller binds it next).
uint16_t FreePort() {
  ScopedFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 0;
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

// tests/harness/tls_proxy.py in front of 127.0.0.1:`backend`, on `port` (0 = any).
struct TlsFront {
  harness::ChildProcess process;
  uint16_t port = 0;
  Status Start(const std::string& dir, const std::string& name, uint16_t backend,
               uint16_t want_port = 0) {
    const std::string port_file = dir + "/" + name + ".port";
    HOIST_ASSIGN_OR_RETURN(
        process,
        harness::ChildProcess::Start({"python3", harness::HarnessSourceDir() + "/tls_proxy.py",
                                      "--cert", dir + "/server.pem", "--key", dir + "/server.key",
                                      "--backend", "127.0.0.1:" + std::to_string(backend), "--port",
                                      std::to_string(want_port), "--port-file", port_file},
                                     {.stderr_path = dir + "/" + name + ".log"}));
    std::string text;
    if (!harness::WaitUntil([&] {
          auto t = ReadFile(port_file);
          if (t) text = *t;
          return t.has_value();
        })) {
      return Fail(ETIMEDOUT,
                  name + ": tls_proxy.py did not start; see " + dir + "/" + name + ".log");
    }
    port = static_cast<uint16_t>(std::stoi(text));
    return Ok();
  }
};

// Everything one suite shares: the upstream U and the mirror M (both real registries), an image
// pushed to both, and M stripped of the image's big layer.
class Registries {
 public:
  Registries() {
    Status tools = harness::RequirePrograms({"docker-registry", "skopeo", "tar", "gzip"});
    if (!tools) {
      error = tools.error().message();
      return;
    }
    auto u = TestRegistry::Launch();
    if (!u) {
      error = u.error().message();
      return;
    }
    auto m = TestRegistry::Launch();
    if (!m) {
      error = m.error().message();
      return;
    }
    upstream = std::move(*u);
    mirror = std::move(*m);
    work = MakeTempDir("work");
    auto built = harness::BuildOciImage(
        work + "/layout",
        {LayerSpec({FileSpec::File("etc/hostname", "mirrored\n")}),
         LayerSpec({FileSpec::BigFile("data/big", kBigSize, 7)}, LayerCompression::kNone)},
        {.tag = "v1"});
    if (!built) {
      error = built.error().message();
      return;
    }
    image = *built;
    for (TestRegistry* r : {upstream.get(), mirror.get()}) {
      Status pushed = harness::PushOciLayout(image.OciRef(), r->DockerRef("test/img", "v1"));
      if (!pushed) {
        error = pushed.error().message();
        return;
      }
    }
    // The mirror lacks the big layer: its GET answers 404.
    std::string data = mirror->BlobPath(image.layers[1].digest.str());
    Status removed = RemoveTree(data.substr(0, data.rfind('/')));
    if (!removed) error = removed.error().message();
  }
  ~Registries() {
    upstream.reset();
    mirror.reset();
    if (!work.empty()) (void)RemoveTree(work);
  }

  std::string error;
  std::unique_ptr<TestRegistry> upstream, mirror;
  std::string work;
  harness::BuiltImage image;
};

Registries* g_regs = nullptr;

class MirrorTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { g_regs = new Registries(); }
  static void TearDownTestSuite() {
    delete g_regs;
    g_regs = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(g_regs->error.empty()) << g_regs->error;
    dir_ = MakeTempDir("conf");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  TestRegistry& U() { return *g_regs->upstream; }
  TestRegistry& M() { return *g_regs->mirror; }
  const harness::BuiltImage& image() { return g_regs->image; }
  std::string Blob(size_t layer) {
    auto bytes = ReadFile(image().layers[layer].blob_path);
    EXPECT_TRUE(bytes.has_value());
    return bytes.value_or("");
  }
  Reference Ref() {
    auto ref = Reference::Parse(U().ImageRef("test/img", "v1"));
    EXPECT_TRUE(ref.has_value());
    return ref.value_or(Reference{});
  }
  std::string Ns() { return "?ns=" + QueryEscape(U().host_port()); }

  // hosts.toml for U: `mirrors` as [host] entries (in order), then U as the server.
  std::string WriteHostsToml(const std::vector<std::string>& mirrors,
                             const std::string& caps = "[\"pull\", \"resolve\"]") {
    std::string text = "server = \"" + U().base_url() + "\"\n";
    for (const std::string& m : mirrors) {
      text += "[host.\"" + m + "\"]\n  capabilities = " + caps + "\n";
    }
    std::string d = dir_ + "/certs.d/" + U().host_port();
    EXPECT_TRUE(MakeDirs(d));
    EXPECT_TRUE(WriteFileAtomic(d + "/hosts.toml", text));
    return dir_ + "/certs.d";
  }
  std::string WriteRegistriesConf(const std::string& extra,
                                  const std::vector<std::string>& mirrors) {
    std::string text = "[[registry]]\nlocation = \"" + U().host_port() + "\"\n" + extra;
    for (const std::string& m : mirrors) text += "[[registry.mirror]]\nlocation = \"" + m + "\"\n";
    std::string path = dir_ + "/registries.conf";
    EXPECT_TRUE(WriteFileAtomic(path, text));
    return path;
  }

  std::unique_ptr<RegistryClient> Client(const std::string& hosts_dir,
                                         const std::string& registries_conf,
                                         std::chrono::milliseconds connect_timeout = {}) {
    auto transport = NewCurlTransport();
    EXPECT_TRUE(transport.has_value());
    if (!transport) return nullptr;
    RegistryOptions options;
    options.platform = Platform{.os = "linux", .architecture = "amd64"};
    options.retry.max_attempts = 2;
    options.retry.total_budget = std::chrono::milliseconds(20000);
    Status mirrors =
        UseMirrors(&options, hosts_dir.empty() ? "none" : hosts_dir,
                   registries_conf.empty() ? "none" : registries_conf, connect_timeout);
    EXPECT_TRUE(mirrors) << mirrors.error().message();
    if (!mirrors) return nullptr;
    return std::make_unique<RegistryClient>(std::shared_ptr<HttpTransport>(std::move(*transport)),
                                            std::make_shared<AnonymousCredentialStore>(), options);
  }

  // Resolve by tag, the small layer whole, the big one whole and as a range: checks the bytes.
  void PullEverything(RegistryClient& client) {
    auto resolved = client.Resolve(Ref());
    ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
    EXPECT_EQ(resolved->manifest_bytes.bytes, image().manifest);
    auto small = client.GetBlob(Ref(), image().layers[0].digest, 1 << 20);
    ASSERT_TRUE(small.has_value()) << small.error().message();
    EXPECT_TRUE(*small == Blob(0));
    auto big = client.GetBlob(Ref(), image().layers[1].digest, 4 << 20);
    ASSERT_TRUE(big.has_value()) << big.error().message();
    EXPECT_TRUE(*big == Blob(1));
    auto source = client.OpenBlobSource(Ref());
    auto range = source->ReadAt(image().layers[1].digest, 1000, 5000);
    ASSERT_TRUE(range.has_value()) << range.error().message();
    EXPECT_TRUE(*range == Blob(1).substr(1000, 5000));
    auto small_range = source->ReadAt(image().layers[0].digest, 10, 20);
    ASSERT_TRUE(small_range.has_value()) << small_range.error().message();
    EXPECT_TRUE(*small_range == Blob(0).substr(10, 20));
  }

  std::string Path(const std::string& what) { return "/v2/test/img/" + what; }
  std::string dir_;
};

TEST_F(MirrorTest, HostsTomlMirrorServesWhatItHasAndFallsThroughPerRequest) {
  auto client = Client(WriteHostsToml({M().base_url()}), "");
  ASSERT_NE(client, nullptr);
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  PullEverything(*client);
  const std::string big = "blobs/" + image().layers[1].digest.str();
  const std::string small = "blobs/" + image().layers[0].digest.str();
  const std::string config = "blobs/" + image().config_digest.str();
  // The mirror served the manifest (by tag: it may resolve), the config and the small layer, each
  // with ?ns=<upstream>; it answered 404 for the big layer, twice (whole, then the range).
  EXPECT_EQ(Seen(M(), mm, 6), (std::multiset<std::string>{
                                  "GET " + Path("manifests/v1") + Ns() + " 200",
                                  "GET " + Path(config) + Ns() + " 200",
                                  "GET " + Path(small) + Ns() + " 200",
                                  "GET " + Path(small) + Ns() + " 206",
                                  "GET " + Path(big) + Ns() + " 404",
                                  "GET " + Path(big) + Ns() + " 404",
                              }));
  // The upstream served only the big layer, without ns.
  EXPECT_EQ(Seen(U(), um, 2),
            (std::multiset<std::string>{"GET " + Path(big) + " 200", "GET " + Path(big) + " 206"}));
}

TEST_F(MirrorTest, HostsTomlTagsResolveOnlyOnHostsAllowedTo) {
  auto client = Client(WriteHostsToml({M().base_url()}, "[\"pull\"]"), "");
  ASSERT_NE(client, nullptr);
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  auto resolved = client->Resolve(Ref());
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  const std::string config = "blobs/" + image().config_digest.str();
  // The tag went to the upstream alone; the config (by digest) to the mirror.
  EXPECT_EQ(Seen(U(), um, 1), (std::multiset<std::string>{"GET " + Path("manifests/v1") + " 200"}));
  EXPECT_EQ(Seen(M(), mm, 1), (std::multiset<std::string>{"GET " + Path(config) + Ns() + " 200"}));
}

TEST_F(MirrorTest, RegistriesConfMirrorServesWhatItHasAndFallsThroughPerRequest) {
  auto client = Client("", WriteRegistriesConf("", {M().host_port()}));
  ASSERT_NE(client, nullptr);
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  PullEverything(*client);
  const std::string big = "blobs/" + image().layers[1].digest.str();
  const std::string small = "blobs/" + image().layers[0].digest.str();
  const std::string config = "blobs/" + image().config_digest.str();
  // registries.conf sends no ns= parameter.
  EXPECT_EQ(Seen(M(), mm, 6), (std::multiset<std::string>{
                                  "GET " + Path("manifests/v1") + " 200",
                                  "GET " + Path(config) + " 200",
                                  "GET " + Path(small) + " 200",
                                  "GET " + Path(small) + " 206",
                                  "GET " + Path(big) + " 404",
                                  "GET " + Path(big) + " 404",
                              }));
  EXPECT_EQ(Seen(U(), um, 2),
            (std::multiset<std::string>{"GET " + Path(big) + " 200", "GET " + Path(big) + " 206"}));
}

TEST_F(MirrorTest, RegistriesConfMirrorByDigestOnlyResolvesTagsUpstream) {
  auto client =
      Client("", WriteRegistriesConf("mirror-by-digest-only = true\n", {M().host_port()}));
  ASSERT_NE(client, nullptr);
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  auto resolved = client->Resolve(Ref());
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  const std::string config = "blobs/" + image().config_digest.str();
  EXPECT_EQ(Seen(U(), um, 1), (std::multiset<std::string>{"GET " + Path("manifests/v1") + " 200"}));
  EXPECT_EQ(Seen(M(), mm, 1), (std::multiset<std::string>{"GET " + Path(config) + " 200"}));
}

TEST_F(MirrorTest, WrongBytesFromAMirrorFallThrough) {
  // A second image, so that corrupting the mirror's copy of its layer touches no other test.
  auto built = harness::BuildOciImage(dir_ + "/layout",
                                      {LayerSpec({FileSpec::File("only-here", "wrong bytes?\n")})},
                                      {.tag = "v1"});
  ASSERT_TRUE(built.has_value()) << built.error().message();
  for (TestRegistry* r : {&U(), &M()}) {
    ASSERT_TRUE(harness::PushOciLayout(built->OciRef(), r->DockerRef("test/wrong", "v1")));
  }
  const Digest layer = built->layers[0].digest;
  auto good = ReadFile(built->layers[0].blob_path);
  ASSERT_TRUE(good.has_value());
  std::string bad = *good;
  bad[bad.size() / 2] ^= 0x55;  // same size, one byte off
  ASSERT_TRUE(WriteFileAtomic(M().BlobPath(layer.str()), bad));

  auto client = Client(WriteHostsToml({M().base_url()}), "");
  ASSERT_NE(client, nullptr);
  auto ref = Reference::Parse(U().ImageRef("test/wrong", "v1"));
  ASSERT_TRUE(ref.has_value());
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  auto blob = client->GetBlob(*ref, layer, 1 << 20);
  ASSERT_TRUE(blob.has_value()) << blob.error().message();
  EXPECT_TRUE(*blob == *good);
  const std::string path = "/v2/test/wrong/blobs/" + layer.str();
  EXPECT_EQ(Seen(M(), mm, 1), (std::multiset<std::string>{"GET " + path + Ns() + " 200"}));
  EXPECT_EQ(Seen(U(), um, 1), (std::multiset<std::string>{"GET " + path + " 200"}));
}

// A listening socket whose accept queue is full: the kernel drops further SYNs, so a connect to
// it neither succeeds nor fails until the client's connect timeout.
struct Blackhole {
  ScopedFd listener;
  std::vector<ScopedFd> fillers;
  uint16_t port = 0;
  bool Open() {
    listener = ScopedFd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
    if (::listen(listener.get(), 0) != 0) return false;
    socklen_t len = sizeof(addr);
    if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
    port = ntohs(addr.sin_port);
    for (int i = 0; i < 2; ++i) {
      ScopedFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
      (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fillers.push_back(std::move(fd));
    }
    return true;
  }
};

TEST_F(MirrorTest, MirrorThatIsDownFallsThrough) {
  // Down for good: a registry that was there and was stopped (connection refused) ...
  auto gone = TestRegistry::Launch();
  ASSERT_TRUE(gone.has_value()) << gone.error().message();
  const std::string gone_url = (*gone)->base_url();
  (*gone)->Stop();
  // ... and one that never answers the connect: the short mirror connect timeout applies.
  Blackhole hole;
  ASSERT_TRUE(hole.Open());
  const std::string hole_url = "http://127.0.0.1:" + std::to_string(hole.port);
  const auto connect_timeout = std::chrono::milliseconds(400);
  auto client = Client(WriteHostsToml({gone_url, hole_url}), "", connect_timeout);
  ASSERT_NE(client, nullptr);
  const uint64_t um = U().LogMark();
  const auto start = std::chrono::steady_clock::now();
  auto resolved = client->Resolve(Ref());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  EXPECT_EQ(resolved->manifest_bytes.bytes, image().manifest);
  // Two requests (manifest, config), each waited out the black hole's connect once.
  EXPECT_GE(elapsed, 2 * connect_timeout);
  const std::string config = "blobs/" + image().config_digest.str();
  EXPECT_EQ(Seen(U(), um, 2), (std::multiset<std::string>{"GET " + Path("manifests/v1") + " 200",
                                                          "GET " + Path(config) + " 200"}));
}

TEST_F(MirrorTest, DistributionPullThroughCacheAsMirror) {
  auto cache = TestRegistry::Launch({.proxy_remote_url = U().base_url()});
  ASSERT_TRUE(cache.has_value()) << cache.error().message();
  TestRegistry& P = **cache;
  auto client = Client(WriteHostsToml({P.base_url()}), "");
  ASSERT_NE(client, nullptr);
  const Digest big = image().layers[1].digest;
  const std::string big_path = Path("blobs/" + big.str());
  auto source = client->OpenBlobSource(Ref());

  // Not cached yet: the cache streams the whole blob from upstream, ignoring Range (200). hoist
  // drops that answer and asks the next host, the upstream, which answers 206.
  uint64_t um = U().LogMark(), pm = P.LogMark();
  auto first = source->ReadAt(big, 1000, 3000);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_TRUE(*first == Blob(1).substr(1000, 3000));
  // (The cache had already sent "200" when hoist hung up; it logs the broken pipe as a 500.)
  auto asked_cache = Seen(P, pm, 1);
  ASSERT_EQ(asked_cache.size(), 1u);
  EXPECT_TRUE(asked_cache.begin()->starts_with("GET " + big_path + Ns() + " "))
      << *asked_cache.begin();
  EXPECT_EQ(Seen(U(), um, 1).count("GET " + big_path + " 206"), 1u);

  // The cache stores what it fetched (in the background); once its repository links the blob,
  // it serves ranges itself, and the upstream sees no more of hoist's requests for it.
  const std::string link = P.storage_dir() + "/docker/registry/v2/repositories/test/img/_layers/" +
                           "sha256/" + big.hex() + "/link";
  ASSERT_TRUE(harness::WaitUntil([&] { return ::access(link.c_str(), F_OK) == 0; }))
      << "the pull-through cache never stored " << big.str();
  um = U().LogMark();
  pm = P.LogMark();
  auto resolved = client->Resolve(Ref());
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  EXPECT_EQ(resolved->manifest_bytes.bytes, image().manifest);
  auto range = source->ReadAt(big, 4096, 777);
  ASSERT_TRUE(range.has_value()) << range.error().message();
  EXPECT_TRUE(*range == Blob(1).substr(4096, 777));
  auto whole = client->GetBlob(Ref(), big, 4 << 20);
  ASSERT_TRUE(whole.has_value()) << whole.error().message();
  EXPECT_TRUE(*whole == Blob(1));
  auto served = Seen(P, pm, 4);
  EXPECT_EQ(served.count("GET " + Path("manifests/v1") + Ns() + " 200"), 1u);
  EXPECT_EQ(served.count("GET " + Path("blobs/" + image().config_digest.str()) + Ns() + " 200"),
            1u);
  EXPECT_EQ(served.count("GET " + big_path + Ns() + " 206"), 1u);
  EXPECT_EQ(served.count("GET " + big_path + Ns() + " 200"), 1u);
  // Whatever the cache asked upstream (it checks tags there), hoist itself sent nothing.
  for (const std::string& line : Seen(U(), um, 0)) {
    EXPECT_EQ(line.find(big_path + " 206"), std::string::npos) << line;
  }
}

// hoistfs takes the same configuration (-o hosts_dir=): the image comes from the mirror, the
// layer it lacks from the upstream, and the files read back exactly.
TEST_F(MirrorTest, HoistfsMountReadsThroughTheMirror) {
  harness::HoistfsMounts mounts(HOISTFS_BINARY);
  struct UnmountAtEnd {
    harness::HoistfsMounts& m;
    ~UnmountAtEnd() { m.UnmountAll(); }
  } unmount_at_end{mounts};
  const std::string mp = dir_ + "/mp", cache = dir_ + "/cache";
  ASSERT_TRUE(MakeDirs(mp));
  ASSERT_TRUE(MakeDirs(cache));
  const std::string hosts_dir = WriteHostsToml({M().base_url()});
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  auto r = mounts.Mount(U().ImageRef("test/img", "v1"), mp, cache,
                        {"-o", "prefetch=none,hosts_dir=" + hosts_dir + ",log_file=" + cache +
                                   "/hoistfs.log,log_level=debug"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  auto hostname = ReadFile(mp + "/etc/hostname");
  EXPECT_EQ(hostname.value_or("?"), "mirrored\n");
  auto big = ReadFile(mp + "/data/big");
  ASSERT_TRUE(big.has_value()) << big.error().message();
  EXPECT_EQ(big->size(), kBigSize);
  EXPECT_TRUE(*big == harness::PatternBytes(7, 0, kBigSize));
  EXPECT_TRUE(mounts.Unmount(mp));
  // The mirror resolved the tag (with ns=) and answered 404 for the big layer; the upstream
  // never saw the manifest and served the big layer.
  const std::string big_path = Path("blobs/" + image().layers[1].digest.str());
  auto mirror_seen = Seen(M(), mm, 2);
  EXPECT_EQ(mirror_seen.count("GET " + Path("manifests/v1") + Ns() + " 200"), 1u);
  EXPECT_GE(mirror_seen.count("GET " + big_path + Ns() + " 404"), 1u);
  auto upstream_seen = Seen(U(), um, 1);
  EXPECT_EQ(upstream_seen.count("GET " + Path("manifests/v1") + " 200"), 0u);
  size_t big_from_upstream = 0;
  for (const std::string& line : upstream_seen) {
    if (line.starts_with("GET " + big_path + " 20")) ++big_from_upstream;
  }
  EXPECT_GE(big_from_upstream, 1u);
}

// A zstd:chunked image (hoist convert) on both registries, one chunk of its layer corrupted in
// the mirror's storage (same length, one byte off: a Range read gets wrong bytes). hoistfs
// mounts through the mirror (hosts.toml, then registries.conf): the chunk fails its digest and
// is refetched alone from the upstream, skipping the mirror; the file reads back exactly. A file
// in an uncorrupted chunk comes from the mirror only. The warning names the mirror, and
// hoist_fetch_errors_total counts the mirror's bad bytes.
TEST_F(MirrorTest, HoistfsRefetchesAChunkWithWrongBytesFromTheUpstream) {
  constexpr uint64_t kFirstSize = (4 << 20) + 11;
  const std::string second_text = "a small file after the big one\n";
  auto src = harness::BuildOciImage(dir_ + "/src",
                                    {LayerSpec({FileSpec::BigFile("data/first", kFirstSize, 23),
                                                FileSpec::File("data/second", second_text)})},
                                    {.tag = "v1"});
  ASSERT_TRUE(src.has_value()) << src.error().message();
  const std::string converted = "oci:" + dir_ + "/chunked:v1";
  auto conv = harness::RunHoist({"convert", "-q", src->OciRef(), converted});
  ASSERT_TRUE(conv.ok()) << conv.Describe() << ": " << conv.stderr_text;
  for (TestRegistry* r : {&U(), &M()}) {
    ASSERT_TRUE(harness::PushOciLayout(converted, r->DockerRef("test/refetch", "v1")));
  }
  // The layer as pushed, and its TOC.
  auto client = Client("", "");
  ASSERT_NE(client, nullptr);
  auto ref = Reference::Parse(U().ImageRef("test/refetch", "v1"));
  ASSERT_TRUE(ref.has_value());
  auto resolved = client->Resolve(*ref);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  ASSERT_EQ(resolved->manifest.layers.size(), 1u);
  const Descriptor& layer = resolved->manifest.layers[0];
  auto good = ReadFile(harness::LayoutBlobPath(dir_ + "/chunked", layer.digest));
  ASSERT_TRUE(good.has_value()) << good.error().message();
  auto annotations = ParseZstdChunkedAnnotations(layer.annotations);
  ASSERT_TRUE(annotations.has_value()) << annotations.error().message();
  auto loaded = LoadZstdChunkedLayer(
      [&](uint64_t off, uint64_t len) -> Result<std::string> {
        if (off + len > good->size()) return Fail(EIO, "range past the end");
        return good->substr(off, len);
      },
      good->size(), layer.digest, *annotations);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  const Entry* first = nullptr;
  const Entry* second = nullptr;
  for (const Entry& e : loaded->index.entries) {
    if (e.path.ends_with("data/first")) first = &e;
    if (e.path.ends_with("data/second")) second = &e;
  }
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_GE(first->chunks.size(), 4u) << "the big file should span several chunks";
  // A chunk in the middle of the big file: far from the small file's neighbour window.
  const Chunk bad_chunk = first->chunks[first->chunks.size() / 2];
  ASSERT_EQ(bad_chunk.encoding, ChunkEncoding::kZstdFrame);
  ASSERT_EQ(second->chunks.size(), 1u);
  ASSERT_GT(second->chunks[0].blob_offset, bad_chunk.blob_offset + bad_chunk.blob_length);
  std::string bad = *good;
  bad[bad_chunk.blob_offset + bad_chunk.blob_length / 2] ^= 0x55;
  ASSERT_TRUE(WriteFileAtomic(M().BlobPath(layer.digest.str()), bad));

  const std::string blob_path = "/v2/test/refetch/blobs/" + layer.digest.str();
  auto check = [&](const std::string& config_option, const std::string& ns,
                   const std::string& name) {
    SCOPED_TRACE(name);
    harness::HoistfsMounts mounts(HOISTFS_BINARY);
    struct UnmountAtEnd {
      harness::HoistfsMounts& m;
      ~UnmountAtEnd() { m.UnmountAll(); }
    } unmount_at_end{mounts};
    const std::string mp = dir_ + "/mp-" + name, cache = dir_ + "/cache-" + name;
    const std::string sock = dir_ + "/metrics-" + name + ".sock";
    ASSERT_TRUE(MakeDirs(mp));
    ASSERT_TRUE(MakeDirs(cache));
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r =
        mounts.Mount(U().ImageRef("test/refetch", "v1"), mp, cache,
                     {"-o", "prefetch=none,elf_prefetch=0,dir_prefetch=0," + config_option +
                                ",metrics=unix:" + sock + ",log_file=" + cache + "/hoistfs.log"});
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;

    // The small file: its chunk is good, and the mirror alone serves it.
    auto small = ReadFile(mp + "/data/second");
    ASSERT_TRUE(small.has_value()) << small.error().message();
    EXPECT_EQ(*small, second_text);
    // Whether a range the mirror served covers `c`. (The registries write their request logs
    // asynchronously: callers wait for the line.)
    auto mirror_covered = [&](const Chunk& c) {
      auto reqs = M().Requests(mm);
      if (!reqs) return false;
      for (const auto& req : *reqs) {
        if (req.uri != blob_path + ns || req.status != 206 || !req.read_offset) continue;
        if (*req.read_offset <= c.blob_offset &&
            *req.read_offset + req.bytes_written >= c.blob_offset + c.blob_length) {
          return true;
        }
      }
      return false;
    };
    EXPECT_TRUE(harness::WaitUntil([&] { return mirror_covered(second->chunks[0]); }))
        << "no mirror request covered the small file's chunk";
    auto upstream_so_far = U().Requests(um);
    ASSERT_TRUE(upstream_so_far.has_value());
    for (const auto& req : *upstream_so_far) {
      EXPECT_NE(req.uri, blob_path) << "the upstream served part of the layer";
    }

    // The big file: every byte exact, although the mirror served one chunk wrong.
    auto big = ReadFile(mp + "/data/first");
    ASSERT_TRUE(big.has_value()) << big.error().message();
    EXPECT_EQ(big->size(), kFirstSize);
    EXPECT_TRUE(*big == harness::PatternBytes(23, 0, kFirstSize));
    // The upstream served exactly one request: the bad chunk alone, as a Range read.
    std::vector<harness::RegistryRequest> refetches;
    ASSERT_TRUE(harness::WaitUntil([&] {
      auto reqs = U().Requests(um);
      if (!reqs) return false;
      refetches.clear();
      for (const auto& req : *reqs) {
        if (req.uri == blob_path) refetches.push_back(req);
      }
      return !refetches.empty();
    }));
    ASSERT_EQ(refetches.size(), 1u);
    EXPECT_EQ(refetches[0].status, 206);
    EXPECT_EQ(refetches[0].read_offset, std::optional<uint64_t>(bad_chunk.blob_offset));
    EXPECT_EQ(refetches[0].bytes_written, bad_chunk.blob_length);
    // The mirror served the first read of that chunk (a range covering it).
    EXPECT_TRUE(harness::WaitUntil([&] { return mirror_covered(bad_chunk); }))
        << "no mirror request covered the bad chunk";
    // Every read of the layer on the mirror was a range (206): nothing failed over for another
    // reason.
    auto mirror_all = M().Requests(mm);
    ASSERT_TRUE(mirror_all.has_value());
    for (const auto& req : *mirror_all) {
      if (req.method == "GET" && req.uri == blob_path + ns) {
        EXPECT_EQ(req.status, 206);
      }
    }

    // One warning names the mirror; the metric counts its bad bytes.
    auto scraped = harness::RunForResult({"curl", "-sS", "--fail", "--max-time", "20",
                                          "--unix-socket", sock, "http://localhost/metrics"});
    ASSERT_TRUE(scraped.ok()) << scraped.Describe() << ": " << scraped.stderr_text;
    EXPECT_NE(scraped.stdout_text.find("hoist_fetch_errors_total{host=\"" + M().host_port() +
                                       "\",kind=\"bad_bytes\"} 1\n"),
              std::string::npos)
        << scraped.stdout_text;
    EXPECT_TRUE(mounts.Unmount(mp));
    auto log = ReadFile(cache + "/hoistfs.log");
    ASSERT_TRUE(log.has_value());
    const std::string warning = "in bytes served by mirror " + M().host_port() +
                                "; refetching from the registry, skipping mirrors";
    size_t warnings = 0;
    for (size_t at = log->find(warning); at != std::string::npos; at = log->find(warning, at + 1)) {
      ++warnings;
    }
    EXPECT_EQ(warnings, 1u) << *log;
  };
  check("hosts_dir=" + WriteHostsToml({M().base_url()}) + ",registries_conf=none", Ns(),
        "hosts-toml");
  check("hosts_dir=none,registries_conf=" + WriteRegistriesConf("", {M().host_port()}), "",
        "registries-conf");
}

TEST_F(MirrorTest, CliTakesHostsDirAndRegistriesConf) {
  const uint64_t um = U().LogMark(), mm = M().LogMark();
  auto r = harness::RunHoist({"inspect", "--raw", "--hosts-dir", WriteHostsToml({M().base_url()}),
                              "--registries-conf", "none", U().ImageRef("test/img", "v1")});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  EXPECT_EQ(r.stdout_text, image().manifest);
  EXPECT_EQ(Seen(M(), mm, 1).count("GET " + Path("manifests/v1") + Ns() + " 200"), 1u);

  auto conf = WriteRegistriesConf("", {M().host_port()});
  auto r2 = harness::RunHoist({"inspect", "--raw", "--hosts-dir", "none", "--registries-conf", conf,
                               U().ImageRef("test/img", "v1")});
  ASSERT_TRUE(r2.ok()) << r2.Describe() << ": " << r2.stderr_text;
  EXPECT_EQ(r2.stdout_text, image().manifest);
  EXPECT_EQ(Seen(M(), mm, 2).count("GET " + Path("manifests/v1") + " 200"), 1u);
  EXPECT_EQ(Seen(U(), um, 0).count("GET " + Path("manifests/v1") + " 200"), 0u);

  // $CONTAINERS_REGISTRIES_CONF names the file when no flag does; blocked refuses in one line.
  auto blocked = WriteRegistriesConf("blocked = true\n", {});
  auto r3 =
      harness::RunHoist({"inspect", "--raw", "--hosts-dir", "none", U().ImageRef("test/img", "v1")},
                        {"CONTAINERS_REGISTRIES_CONF=" + blocked});
  EXPECT_NE(r3.exit_code, 0);
  EXPECT_EQ(r3.stdout_text, "");
  EXPECT_NE(
      r3.stderr_text.find(U().host_port() + "/test/img: registry blocked by " + blocked + ":1"),
      std::string::npos)
      << r3.stderr_text;
  EXPECT_EQ(std::count(r3.stderr_text.begin(), r3.stderr_text.end(), '\n'), 1) << r3.stderr_text;

  // A named file that is missing is an error; a bad one names file and line.
  auto r4 = harness::RunHoist({"inspect", "--raw", "--registries-conf", dir_ + "/absent.conf",
                               U().ImageRef("test/img", "v1")});
  EXPECT_NE(r4.exit_code, 0);
  EXPECT_NE(r4.stderr_text.find(dir_ + "/absent.conf: registries.conf not found"),
            std::string::npos)
      << r4.stderr_text;
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/bad.conf", "[[registry]]\nblocked = \"yes\"\n"));
  auto r5 = harness::RunHoist({"inspect", "--raw", "--registries-conf", dir_ + "/bad.conf",
                               U().ImageRef("test/img", "v1")});
  EXPECT_NE(r5.exit_code, 0);
  EXPECT_NE(r5.stderr_text.find(dir_ + "/bad.conf:2: blocked must be a boolean"), std::string::npos)
      << r5.stderr_text;
}

// Pushes (`hoist copy` to a registry) go where containerd and podman push: with hosts.toml, the
// first host with the push capability alone (a mirror here, with ?ns=), else the server; with
// registries.conf, the registry itself (mirrors are pull-only); `blocked` refuses. Each
// registry's log says who received what, and the pushed image is on that registry only.
TEST_F(MirrorTest, PushesGoToThePushHostAlone) {
  auto direct = Client("", "");
  ASSERT_NE(direct, nullptr);
  auto copy = [&](const std::string& hosts_dir, const std::string& conf, const std::string& tag,
                  const std::vector<std::string>& env = {}) {
    return harness::RunHoist({"copy", "--hosts-dir", hosts_dir, "--registries-conf", conf,
                              image().OciRef(), "docker://" + U().ImageRef("test/pushed", tag)},
                             env);
  };
  const std::string repo = "/v2/test/pushed/";
  {
    // A mirror with capabilities = ["push"] receives the whole push, the upstream nothing.
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = copy(WriteHostsToml({M().base_url()}, "[\"push\"]"), "none", "p1");
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    const std::string put = "PUT " + repo + "manifests/p1" + Ns() + " 201";
    auto m = SeenFor(M(), mm, repo, put);
    EXPECT_EQ(std::count(m.begin(), m.end(), put), 1) << testing::PrintToString(m);
    for (const Digest& d :
         {image().config_digest, image().layers[0].digest, image().layers[1].digest}) {
      EXPECT_EQ(std::count(m.begin(), m.end(), "HEAD " + repo + "blobs/" + d.str() + Ns() + " 404"),
                1)
          << d.str() << " " << testing::PrintToString(m);
    }
    EXPECT_EQ(std::count(m.begin(), m.end(), "POST " + repo + "blobs/uploads/" + Ns() + " 202"), 3)
        << testing::PrintToString(m);
    EXPECT_EQ(SeenFor(U(), um, repo), std::vector<std::string>{});
    auto on_m = direct->GetManifest(*Reference::Parse(M().ImageRef("test/pushed", "p1")));
    ASSERT_TRUE(on_m.has_value()) << on_m.error().message();
    EXPECT_EQ(on_m->bytes, image().manifest);
    auto on_u = direct->HeadManifest(*Reference::Parse(U().ImageRef("test/pushed", "p1")));
    ASSERT_FALSE(on_u.has_value());
    EXPECT_EQ(on_u.error().code(), ENOENT) << on_u.error().message();
  }
  {
    // A mirror that may pull and resolve but not push: the push goes to the server.
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = copy(WriteHostsToml({M().base_url()}), "none", "p2");
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    const std::string put = "PUT " + repo + "manifests/p2 201";
    auto u = SeenFor(U(), um, repo, put);
    EXPECT_EQ(std::count(u.begin(), u.end(), put), 1) << testing::PrintToString(u);
    EXPECT_EQ(SeenFor(M(), mm, repo), std::vector<std::string>{});
  }
  {
    // registries.conf mirrors are pull-only: the registry itself receives the push.
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = copy("none", WriteRegistriesConf("", {M().host_port()}), "p3");
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    const std::string put = "PUT " + repo + "manifests/p3 201";
    auto u = SeenFor(U(), um, repo, put);
    EXPECT_EQ(std::count(u.begin(), u.end(), put), 1) << testing::PrintToString(u);
    EXPECT_EQ(SeenFor(M(), mm, repo), std::vector<std::string>{});
  }
  {
    // blocked refuses the push in one line, before any request.
    const uint64_t um = U().LogMark();
    auto blocked = WriteRegistriesConf("blocked = true\n", {});
    auto r = copy("none", blocked, "p4");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(
        r.stderr_text.find(U().host_port() + "/test/pushed: registry blocked by " + blocked + ":1"),
        std::string::npos)
        << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
    EXPECT_EQ(SeenFor(U(), um, "/v2/test/pushed/manifests/p4"), std::vector<std::string>{});
  }
}

// `hoist tags`: with hosts.toml, tags are listed by the hosts allowed to resolve (containerd
// resolves tags only there), falling through in order; with registries.conf, by the registry
// itself, as skopeo list-tags (containers/image lists tags without mirrors).
TEST_F(MirrorTest, TagListsGoToResolveHostsOrTheRegistry) {
  auto tags = [&](const std::string& hosts_dir, const std::string& conf) {
    return harness::RunHoist({"tags", "--hosts-dir", hosts_dir, "--registries-conf", conf,
                              U().host_port() + "/test/img"});
  };
  const std::string list = "/v2/test/img/tags/list";
  {
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = tags(WriteHostsToml({M().base_url()}), "none");
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "v1\n");
    const std::string get = "GET " + list + Ns() + " 200";
    EXPECT_EQ(SeenFor(M(), mm, list, get), std::vector<std::string>{get});
    EXPECT_EQ(SeenFor(U(), um, list), std::vector<std::string>{});
  }
  {
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = tags(WriteHostsToml({M().base_url()}, "[\"pull\"]"), "none");
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "v1\n");
    const std::string get = "GET " + list + " 200";
    EXPECT_EQ(SeenFor(U(), um, list, get), std::vector<std::string>{get});
    EXPECT_EQ(SeenFor(M(), mm, list), std::vector<std::string>{});
  }
  {
    const uint64_t um = U().LogMark(), mm = M().LogMark();
    auto r = tags("none", WriteRegistriesConf("", {M().host_port()}));
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "v1\n");
    const std::string get = "GET " + list + " 200";
    EXPECT_EQ(SeenFor(U(), um, list, get), std::vector<std::string>{get});
    EXPECT_EQ(SeenFor(M(), mm, list), std::vector<std::string>{});
  }
}

// A mirror reached over TLS with a private CA (hosts.toml `ca`) whose Bearer realm is also
// served over TLS by that CA: the token request must use the mirror's CA too, or the mirror is
// given up (EPROTO) and the upstream serves. Real parts: a CA and a server certificate made
// with openssl, TLS fronts (tls_proxy.py) for a token-auth registry in pull-through mode (its
// remote is U) and for its token server. The mirror's log shows it served the manifest with a
// token; without `ca` the same pull falls through to U.
TEST_F(MirrorTest, TlsMirrorTokenRequestsUseItsCa) {
  ASSERT_TRUE(harness::RequirePrograms({"openssl", "python3"}));
  auto sh = [&](const std::string& cmd) {
    auto r = harness::RunChecked({"sh", "-c", cmd}, {.cwd = dir_});
    EXPECT_TRUE(r.has_value()) << r.error().message();
  };
  sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
     "-subj /CN=hoist-test-ca 2>/dev/null");
  sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
     "-subj /CN=127.0.0.1 2>/dev/null");
  sh("printf 'subjectAltName=IP:127.0.0.1\n' > san.ext && openssl x509 -req -in server.csr "
     "-CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext "
     "2>/dev/null");
  const uint16_t token_port = FreePort();
  ASSERT_NE(token_port, 0);
  auto mirror = TestRegistry::Launch(
      {.auth = harness::RegistryAuthMode::kToken,
       .user = "",
       .password = "",
       .proxy_remote_url = U().base_url(),
       .token_realm = "https://127.0.0.1:" + std::to_string(token_port) + "/token"});
  ASSERT_TRUE(mirror.has_value()) << mirror.error().message();
  TlsFront token_front, registry_front;
  ASSERT_TRUE(token_front.Start(dir_, "token", (*mirror)->token_server()->port(), token_port));
  ASSERT_TRUE(registry_front.Start(dir_, "registry", (*mirror)->port()));
  const std::string origin = "https://127.0.0.1:" + std::to_string(registry_front.port);

  auto hosts_toml = [&](const std::string& extra) {
    std::string d = dir_ + "/certs.d/" + U().host_port();
    EXPECT_TRUE(MakeDirs(d));
    EXPECT_TRUE(WriteFileAtomic(
        d + "/hosts.toml", "server = \"" + U().base_url() + "\"\n" + "[host.\"" + origin + "\"]\n" +
                               "  capabilities = [\"pull\", \"resolve\"]\n" + extra));
    return dir_ + "/certs.d";
  };
  const std::string manifest = "GET " + Path("manifests/v1") + Ns();
  {
    auto client = Client(hosts_toml("  ca = \"" + dir_ + "/ca.pem\"\n"), "");
    ASSERT_NE(client, nullptr);
    const uint64_t mm = (*mirror)->LogMark(), um = U().LogMark();
    auto got = client->GetManifest(Ref());
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(got->bytes, image().manifest);
    // The mirror: first anonymous (401: its challenge), then with the token, 200.
    EXPECT_EQ(SeenFor(**mirror, mm, "/manifests/", manifest + " 200"),
              (std::vector<std::string>{manifest + " 401", manifest + " 200"}));
    auto stats = (*mirror)->token_server()->Stats();
    ASSERT_TRUE(stats.has_value()) << stats.error().message();
    EXPECT_EQ(stats->issued, 1);
    // U served the mirror's own pull-through fetch, not hoist's: no ?ns= there.
    for (const std::string& line : SeenFor(U(), um, "/manifests/")) {
      EXPECT_EQ(line.find("ns="), std::string::npos) << line;
    }
  }
  {
    // Without `ca` the mirror's certificate is not trusted: the pull falls through to U.
    auto client = Client(hosts_toml(""), "");
    ASSERT_NE(client, nullptr);
    const uint64_t mm = (*mirror)->LogMark(), um = U().LogMark();
    auto got = client->GetManifest(Ref());
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(got->bytes, image().manifest);
    const std::string direct = "GET " + Path("manifests/v1") + " 200";
    EXPECT_EQ(SeenFor(U(), um, "/manifests/", direct), std::vector<std::string>{direct});
    EXPECT_EQ(SeenFor(**mirror, mm, "/manifests/"), std::vector<std::string>{});
  }
}

}  // namespace
}  // namespace hoist
