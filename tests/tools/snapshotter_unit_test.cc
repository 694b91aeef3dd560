// hoist-snapshotter's core without gRPC or containerd: containerd's filter syntax, the LMDB
// snapshot records (SnapshotMeta) and the Snapshotter's semantics (errors in containerd's order
// and classes, mounts, directories, usage, cleanup, the remote-layer seam with a fake source).
// The same behaviour through real containerd is tests/integration/snapshotter_test.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "index/snapshot_meta.h"
#include "tools/snapshotter/filter.h"
#include "tools/snapshotter/filter_regex.h"
#include "tools/snapshotter/snapshotter.h"

namespace hoist {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> Names(const std::vector<SnapshotInfo>& infos) {
  std::vector<std::string> out;
  for (const SnapshotInfo& i : infos) out.push_back(i.name);
  return out;
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/hoist-snap-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  std::string dir_;
};

// ---- filters ----

std::optional<std::string> Lookup(const std::map<std::string, std::string>& fields,
                                  const std::vector<std::string>& path) {
  std::string key;
  for (size_t i = 0; i < path.size(); ++i) key += (i ? "\x1f" : "") + path[i];
  auto it = fields.find(key);
  if (it == fields.end()) return std::nullopt;
  return it->second;
}

bool Matches(const std::vector<std::string>& filters,
             const std::map<std::string, std::string>& fields) {
  auto f = Filter::ParseAll(filters);
  EXPECT_TRUE(f.has_value()) << f.error().message();
  if (!f) return false;
  return f->Match([&](const std::vector<std::string>& p) { return Lookup(fields, p); });
}

TEST(SnapshotFilterTest, ContainerdMetadataFilterAfterAlreadyExists) {
  // The exact filter containerd's metadata layer sends after a remote ALREADY_EXISTS.
  const std::string f =
      R"(labels."containerd.io/snapshot.ref"==sha256:abc123,parent=="default/2/sha256:def")";
  auto sel = Filter::Parse(f);
  ASSERT_TRUE(sel.has_value()) << sel.error().message();
  ASSERT_EQ(sel->size(), 2u);
  EXPECT_EQ((*sel)[0].field_path,
            (std::vector<std::string>{"labels", "containerd.io/snapshot.ref"}));
  EXPECT_EQ((*sel)[0].op, Filter::Op::kEqual);
  EXPECT_EQ((*sel)[0].value, "sha256:abc123");
  EXPECT_EQ((*sel)[1].field_path, (std::vector<std::string>{"parent"}));
  EXPECT_EQ((*sel)[1].value, "default/2/sha256:def");
}

TEST(SnapshotFilterTest, OperatorsPresenceAndAny) {
  const std::map<std::string, std::string> fields = {{"name", "default/1/x"},
                                                     {"kind", "committed"},
                                                     {"labels\x1f"
                                                      "a.b",
                                                      "1"}};
  EXPECT_TRUE(Matches({"kind==committed"}, fields));
  EXPECT_FALSE(Matches({"kind==active"}, fields));
  EXPECT_TRUE(Matches({"kind!=active"}, fields));
  EXPECT_TRUE(Matches({"labels.\"a.b\""}, fields));  // present
  EXPECT_FALSE(Matches({"labels.c"}, fields));
  EXPECT_TRUE(Matches({"labels.c!=x"}, fields));      // absent is "" for !=
  EXPECT_FALSE(Matches({"labels.c==\"\""}, fields));  // absent never equals
  EXPECT_TRUE(Matches({"name~=^default/"}, fields));
  EXPECT_TRUE(Matches({"name~=/1\\/x$/"}, fields));
  EXPECT_FALSE(Matches({"name~=^other"}, fields));
  EXPECT_TRUE(Matches({"kind==view", "name==default/1/x"}, fields));  // any of them
  EXPECT_FALSE(Matches({"kind==view", "name==nope"}, fields));
  EXPECT_FALSE(Matches({"kind==committed,name==nope"}, fields));  // all selectors
  EXPECT_TRUE(Matches({}, fields));
  EXPECT_TRUE(Matches({""}, fields));
  EXPECT_TRUE(Matches({"name == default/1/x"}, fields));  // spaces around the operator
  EXPECT_FALSE(Matches({"name~=("}, fields));             // bad pattern matches nothing
  EXPECT_FALSE(Matches({"name~=(d)\\1*e"}, fields));      // no backreferences (as RE2)
  EXPECT_FALSE(Matches({"name~=t{2}"}, fields));          // no counted repetition
  auto long_pattern = Filter::ParseAll({"name~=" + std::string(257, 'a')});
  ASSERT_FALSE(long_pattern.has_value());
  EXPECT_EQ(long_pattern.error().code(), EINVAL);
}

TEST(SnapshotFilterTest, RegexSubsetMatchesAsRe2) {
  struct Case {
    std::string pattern, text;
    bool match;
  };
  for (const Case& c : std::vector<Case>{
           {"abc", "xxabcxx", true},     {"^abc", "xabc", false},
           {"abc$", "abcx", false},      {"^$", "", true},
           {"a.c", "a\nc", false},       {"a.c", "abc", true},
           {"colou?r", "color", true},   {"colou?r", "colouur", false},
           {"ab*c", "ac", true},         {"ab+c", "ac", false},
           {"(ab)+$", "xabab", true},    {"^(?:a|bc)+$", "abca", true},
           {"^(a|bc)+$", "abcb", false}, {"[a-c]x", "bx", true},
           {"[^a-c]x", "bx", false},     {"[]a]", "]", true},
           {"\\d+\\.\\d", "v1.2", true}, {"^\\w+$", "a_1", true},
           {"^\\w+$", "a-1", false},     {"\\s", "a b", true},
           {"a|", "zzz", true},          {"(|a)b", "b", true},
           {"a*?b", "aab", true},        {"[\\d-]+", "1-2", true},
       }) {
    auto re = FilterRegex::Compile(c.pattern);
    ASSERT_TRUE(re.has_value()) << c.pattern;
    EXPECT_EQ(re->Search(c.text), c.match) << c.pattern << " on " << c.text;
  }
  for (const char* bad :
       {"(", ")", "a**", "a{2}", "[a", "(?i)a", "\\b", "\\1", "*a", "[[:alpha:]]", "[z-a]"}) {
    EXPECT_FALSE(FilterRegex::Compile(bad).has_value()) << bad;
  }
  EXPECT_FALSE(FilterRegex::Compile(std::string(257, 'a')).has_value());
  // Patterns that make backtracking engines explode are linear here.
  auto nested = FilterRegex::Compile("(a*)*(b|a+)+c");
  ASSERT_TRUE(nested.has_value());
  EXPECT_FALSE(nested->Search(std::string(4096, 'a')));
}

TEST(SnapshotFilterTest, QuotedEscapes) {
  auto u = UnquoteFilterString(R"("a\"b\\c\x41\u00e9\101\n")");
  ASSERT_TRUE(u.has_value()) << u.error().message();
  EXPECT_EQ(*u,
            "a\"b\\cA\xc3\xa9"
            "A\n");
  EXPECT_FALSE(UnquoteFilterString(R"("bad\q")").has_value());
  EXPECT_FALSE(UnquoteFilterString(R"("x)").has_value());
  EXPECT_EQ(UnquoteFilterString("|a/b|").value_or("?"), "a/b");
}

TEST(SnapshotFilterTest, ErrorsAreInvalidArgumentWithPosition) {
  struct Case {
    std::string filter, message;
  };
  for (const Case& c : std::vector<Case>{
           {"name==", "filters: parse error: [name==]: expected value or quoted"},
           {"name=x", "filters: parse error: [name >|=|< x]: unsupported operator \"=\""},
           {"==x", "filters: parse error: [ >|=|< =x]: expected field or quoted"},
           {"name==a b", "filters: parse error: [name==a >| |< b]: unexpected input:  "},
           {"name==\"x", "filters: parse error: [name== >|\"|< x]: quoted literal not terminated"},
           {"name==|x|", "filters: parse error: [name== >|||< x|]: invalid quote encountered"},
           {"labels.", "filters: parse error: [labels.]: expected field or quoted"},
       }) {
    auto f = Filter::ParseAll({c.filter});
    ASSERT_FALSE(f.has_value()) << c.filter;
    EXPECT_EQ(f.error().code(), EINVAL);
    EXPECT_EQ(f.error().message(), c.message) << c.filter;
  }
}

// ---- record codec ----

TEST(SnapshotMetaTest, RecordRoundTripAndCorruption) {
  SnapshotRecord r;
  r.id = 42;
  r.info.name = "k";
  r.info.parent = "p";
  r.info.kind = SnapshotKind::kCommitted;
  r.info.created_ns = -5;
  r.info.updated_ns = 1700000000123456789;
  r.info.labels = {{"a", "1"}, {"b", std::string("\0x", 2)}};
  r.usage = {.size = 8192, .inodes = 3};
  r.remote_path = "/mnt/layers/sha256-x";
  const std::string bytes = EncodeSnapshotRecord(r);
  auto d = DecodeSnapshotRecord("k", bytes);
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_EQ(d->id, 42u);
  EXPECT_EQ(d->info.parent, "p");
  EXPECT_EQ(d->info.kind, SnapshotKind::kCommitted);
  EXPECT_EQ(d->info.created_ns, -5);
  EXPECT_EQ(d->info.updated_ns, 1700000000123456789);
  EXPECT_EQ(d->info.labels, r.info.labels);
  EXPECT_EQ(d->usage.size, 8192);
  EXPECT_EQ(d->usage.inodes, 3);
  EXPECT_EQ(d->remote_path, r.remote_path);
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto t = DecodeSnapshotRecord("k", bytes.substr(0, n));
    ASSERT_FALSE(t.has_value()) << n;
    EXPECT_EQ(t.error().code(), EIO);
  }
  auto trailing = DecodeSnapshotRecord("k", bytes + "x");
  ASSERT_FALSE(trailing.has_value());
  EXPECT_EQ(trailing.error().message(), "corrupt snapshot record k (trailing bytes)");
}

// ---- metadata semantics ----

class SnapshotMetaStoreTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    auto m = SnapshotMeta::Open(dir_ + "/meta");
    ASSERT_TRUE(m.has_value()) << m.error().message();
    meta_ = std::move(*m);
  }
  SnapshotRecord MustCreate(SnapshotKind kind, const std::string& key, const std::string& parent,
                            const SnapshotLabels& labels = {}) {
    auto id = meta_->NewId();
    EXPECT_TRUE(id.has_value());
    auto r = meta_->Create(kind, key, parent, labels, id.value_or(0));
    EXPECT_TRUE(r.has_value()) << key << ": " << r.error().message();
    return r.value_or(SnapshotRecord{});
  }
  void MustCommit(const std::string& key, const std::string& name) {
    auto s = meta_->Commit(key, name, {}, {});
    EXPECT_TRUE(s.has_value()) << s.error().message();
  }
  std::unique_ptr<SnapshotMeta> meta_;
};

TEST_F(SnapshotMetaStoreTest, CreateErrorsInContainerdOrder) {
  MustCreate(SnapshotKind::kActive, "a", "");
  // Parent checks come before the key check.
  auto missing = meta_->Create(SnapshotKind::kActive, "a", "nope", {}, 99);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
  auto not_committed = meta_->Create(SnapshotKind::kActive, "b", "a", {}, 99);
  ASSERT_FALSE(not_committed.has_value());
  EXPECT_EQ(not_committed.error().code(), EINVAL);
  EXPECT_EQ(not_committed.error().message(), "parent a is not a committed snapshot");
  auto dup = meta_->Create(SnapshotKind::kView, "a", "", {}, 99);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code(), EEXIST);
  auto committed_kind = meta_->Create(SnapshotKind::kCommitted, "c", "", {}, 99);
  ASSERT_FALSE(committed_kind.has_value());
  EXPECT_EQ(committed_kind.error().code(), EINVAL);
  auto long_key = meta_->Create(SnapshotKind::kActive, std::string(512, 'k'), "", {}, 99);
  ASSERT_FALSE(long_key.has_value());
  EXPECT_EQ(long_key.error().code(), EINVAL);
  auto big_label =
      meta_->Create(SnapshotKind::kActive, "d", "", {{"k", std::string(4096, 'v')}}, 99);
  ASSERT_FALSE(big_label.has_value());
  EXPECT_EQ(big_label.error().code(), EINVAL);
}

TEST_F(SnapshotMetaStoreTest, CommitSemantics) {
  const SnapshotRecord a = MustCreate(SnapshotKind::kActive, "a", "", {{"old", "x"}});
  MustCreate(SnapshotKind::kView, "v", "");
  // Name taken wins over everything (EEXIST), then missing key (ENOENT), then kind (EBUSY).
  auto taken = meta_->Commit("nope", "v", {}, {});
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code(), EEXIST);
  auto missing = meta_->Commit("nope", "c", {}, {});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
  auto view = meta_->Commit("v", "c", {}, {});
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error().code(), EBUSY);
  EXPECT_EQ(view.error().message(), "snapshot v is not active");

  ASSERT_TRUE(meta_->Commit("a", "c", {{"new", "y"}}, {.size = 4096, .inodes = 2}).has_value());
  EXPECT_EQ(meta_->Get("a").error().code(), ENOENT);
  auto c = meta_->Get("c");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->id, a.id);
  EXPECT_EQ(c->info.kind, SnapshotKind::kCommitted);
  EXPECT_EQ(c->info.labels, (SnapshotLabels{{"new", "y"}}));  // replaced, not inherited
  EXPECT_EQ(c->usage.size, 4096);
  EXPECT_EQ(c->usage.inodes, 2);
  // Committing a committed snapshot again: FailedPrecondition.
  auto again = meta_->Commit("c", "c2", {}, {});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), EBUSY);
}

TEST_F(SnapshotMetaStoreTest, RemoveWithChildrenIsFailedPrecondition) {
  MustCreate(SnapshotKind::kActive, "a", "");
  MustCommit("a", "base");
  MustCreate(SnapshotKind::kActive, "b", "base");
  MustCommit("b", "top");  // the children index follows the commit's new name
  MustCreate(SnapshotKind::kView, "v", "top");
  auto r = meta_->Remove("base");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), EBUSY);
  EXPECT_EQ(r.error().message(), "cannot remove snapshot base with child");
  EXPECT_EQ(meta_->Remove("top").error().code(), EBUSY);
  ASSERT_TRUE(meta_->Remove("v").has_value());
  ASSERT_TRUE(meta_->Remove("top").has_value());
  ASSERT_TRUE(meta_->Remove("base").has_value());
  EXPECT_EQ(meta_->Remove("base").error().code(), ENOENT);
  auto all = meta_->List();
  ASSERT_TRUE(all.has_value());
  EXPECT_TRUE(all->empty());
}

TEST_F(SnapshotMetaStoreTest, UpdateFieldPaths) {
  MustCreate(SnapshotKind::kActive, "a", "", {{"keep", "1"}, {"x", "old"}});
  SnapshotInfo in;
  in.name = "a";
  in.labels = {{"x", "new"}, {"y", "2"}, {"ignored", "3"}};
  auto u = meta_->Update(in, {"labels.x", "labels.y", "labels.keep"});
  ASSERT_TRUE(u.has_value()) << u.error().message();
  // labels.keep is absent from the request: set to "", i.e. removed (containerd's semantics).
  EXPECT_EQ(u->labels, (SnapshotLabels{{"x", "new"}, {"y", "2"}}));
  EXPECT_EQ(u->kind, SnapshotKind::kActive);
  EXPECT_GE(u->updated_ns, u->created_ns);
  auto whole = meta_->Update({.name = "a", .labels = {{"only", "z"}}}, {"labels"});
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->labels, (SnapshotLabels{{"only", "z"}}));
  auto no_mask = meta_->Update({.name = "a", .labels = {{"m", "1"}}}, {});
  ASSERT_TRUE(no_mask.has_value());
  EXPECT_EQ(no_mask->labels, (SnapshotLabels{{"m", "1"}}));
  for (const char* bad : {"parent", "kind", "name", "created_at"}) {
    auto r = meta_->Update({.name = "a"}, {bad});
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), std::string("cannot update ") + bad + " field on snapshot a");
  }
  EXPECT_EQ(meta_->Update({.name = "nope"}, {}).error().code(), ENOENT);
  EXPECT_EQ(meta_->Get("a")->info.labels, (SnapshotLabels{{"m", "1"}}));
}

TEST_F(SnapshotMetaStoreTest, RecordsSurviveReopen) {
  MustCreate(SnapshotKind::kActive, "a", "", {{"l", "v"}});
  MustCommit("a", "base");
  const uint64_t before = meta_->NewId().value_or(0);
  meta_.reset();
  auto m = SnapshotMeta::Open(dir_ + "/meta");
  ASSERT_TRUE(m.has_value());
  auto base = (*m)->Get("base");
  ASSERT_TRUE(base.has_value());
  EXPECT_EQ(base->info.kind, SnapshotKind::kCommitted);
  EXPECT_GT((*m)->NewId().value_or(0), before);  // ids are never reused
}

TEST_F(SnapshotMetaStoreTest, DamagedFileIsSetAsideAndTheStoreStartsEmpty) {
  MustCreate(SnapshotKind::kActive, "a", "");
  meta_.reset();
  // A text file where data.mdb was: set aside at open, one warning, an empty store.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/meta/data.mdb", std::string(20000, 'x')).has_value());
  auto m = SnapshotMeta::Open(dir_ + "/meta");
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_TRUE((*m)->set_aside_at_open().starts_with(dir_ + "/meta/data.mdb.damaged-"))
      << (*m)->set_aside_at_open();
  EXPECT_TRUE(Exists((*m)->set_aside_at_open()));
  auto all = (*m)->List();
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_TRUE(all->empty());
  EXPECT_EQ((*m)->Get("a").error().code(), ENOENT);
  // The fresh store works.
  auto id = (*m)->NewId();
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE((*m)->Create(SnapshotKind::kActive, "a", "", {}, *id).has_value());
}

// ---- the Snapshotter ----

class FakeSource : public RemoteLayerSource {
 public:
  std::map<std::string, std::string> trees;  // chain id -> directory
  std::vector<std::string> forgotten;
  std::atomic<int> calls{0};
  Result<std::string> Resolve(const RemoteLayerRequest& req) override {
    ++calls;
    auto it = trees.find(req.chain_id);
    if (it == trees.end()) return Fail(ENOENT, "no tree for " + req.chain_id);
    return it->second;
  }
  void Forget(const std::string& chain_id, const std::string&) override {
    forgotten.push_back(chain_id);
  }
};

class SnapshotterTest : public TempDirTest {
 protected:
  void Open(std::shared_ptr<RemoteLayerSource> remote = nullptr) {
    sn_.reset();
    auto s = Snapshotter::Open({.root = dir_ + "/root", .remote = std::move(remote)});
    ASSERT_TRUE(s.has_value()) << s.error().message();
    sn_ = std::move(*s);
  }
  void SetUp() override {
    TempDirTest::SetUp();
    Open();
    index_off_ = Exists("/sys/module/overlay/parameters/index");
  }
  std::string Snap(const std::string& id) { return dir_ + "/root/snapshots/" + id; }
  std::vector<std::string> Overlay(std::vector<std::string> opts) {
    if (index_off_) opts.insert(opts.begin(), "index=off");
    return opts;
  }
  std::vector<std::string> SnapshotDirs() {
    std::vector<std::string> out;
    auto l = ListDir(dir_ + "/root/snapshots");
    return l ? *l : out;
  }
  static Result<std::vector<std::string>> ListDir(const std::string& d) {
    std::vector<std::string> out;
    DIR* dir = ::opendir(d.c_str());
    if (dir == nullptr) return Fail(ErrnoError("opendir"));
    while (struct dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(dir);
    std::sort(out.begin(), out.end());
    return out;
  }
  // A committed chain base <- mid, each with one file.
  void MakeChain() {
    auto m = sn_->Prepare("p1", "", {});
    ASSERT_TRUE(m.has_value()) << m.error().message();
    ASSERT_TRUE(WriteFileAtomic(m->front().source + "/one", "1").has_value());
    ASSERT_TRUE(sn_->Commit("base", "p1", {}).has_value());
    auto m2 = sn_->Prepare("p2", "base", {});
    ASSERT_TRUE(m2.has_value()) << m2.error().message();
    ASSERT_TRUE(sn_->Commit("mid", "p2", {}).has_value());
  }
  std::unique_ptr<Snapshotter> sn_;
  bool index_off_ = false;
};

TEST_F(SnapshotterTest, MountsAsContainerdOverlay) {
  auto a = sn_->Prepare("p1", "", {});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, (std::vector<SnapshotMount>{{"bind", Snap("1") + "/fs", {"rw", "rbind"}}}));
  // Snapshot 1's directory has fs and work.
  EXPECT_EQ(ListDir(Snap("1")).value_or(std::vector<std::string>{}),
            (std::vector<std::string>{"fs", "work"}));
  ASSERT_TRUE(sn_->Commit("base", "p1", {}).has_value());
  EXPECT_EQ(sn_->Mounts("base").error().code(), EBUSY);

  auto v0 = sn_->View("v0", "", {});
  ASSERT_TRUE(v0.has_value());
  EXPECT_EQ(*v0, (std::vector<SnapshotMount>{{"bind", Snap("2") + "/fs", {"ro", "rbind"}}}));
  EXPECT_EQ(ListDir(Snap("2")).value_or(std::vector<std::string>{}),
            (std::vector<std::string>{"fs"}));  // a view has no workdir

  auto v1 = sn_->View("v1", "base", {});
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(*v1, (std::vector<SnapshotMount>{{"bind", Snap("1") + "/fs", {"ro", "rbind"}}}));

  auto p = sn_->Prepare("p2", "base", {});
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (std::vector<SnapshotMount>{
                    {"overlay", "overlay",
                     Overlay({"workdir=" + Snap("4") + "/work", "upperdir=" + Snap("4") + "/fs",
                              "lowerdir=" + Snap("1") + "/fs"})}}));
  ASSERT_TRUE(sn_->Commit("mid", "p2", {}).has_value());
  auto top = sn_->Prepare("p3", "mid", {});
  ASSERT_TRUE(top.has_value());
  EXPECT_EQ(*top, (std::vector<SnapshotMount>{
                      {"overlay", "overlay",
                       Overlay({"workdir=" + Snap("5") + "/work", "upperdir=" + Snap("5") + "/fs",
                                "lowerdir=" + Snap("4") + "/fs:" + Snap("1") + "/fs"})}}));
  EXPECT_EQ(sn_->Mounts("p3").value_or(std::vector<SnapshotMount>{}), *top);
  auto v2 = sn_->View("v2", "mid", {});
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(*v2, (std::vector<SnapshotMount>{
                     {"overlay", "overlay",
                      Overlay({"lowerdir=" + Snap("4") + "/fs:" + Snap("1") + "/fs"})}}));
}

TEST_F(SnapshotterTest, ErrorsAndDirectoriesOfFailedCreates) {
  MakeChain();
  const auto dirs = SnapshotDirs();
  EXPECT_EQ(sn_->Prepare("x", "nope", {}).error().code(), ENOENT);
  EXPECT_EQ(sn_->Prepare("p1x", "base", {}).has_value(), true);
  EXPECT_EQ(sn_->Prepare("p1x", "base", {}).error().code(), EEXIST);
  EXPECT_EQ(sn_->View("y", "p1x", {}).error().code(), EINVAL);  // parent not committed
  EXPECT_EQ(sn_->Commit("c", "nope", {}).error().code(), ENOENT);
  EXPECT_EQ(sn_->Stat("nope").error().code(), ENOENT);
  EXPECT_EQ(sn_->Usage("nope").error().code(), ENOENT);
  EXPECT_EQ(sn_->Mounts("nope").error().code(), ENOENT);
  EXPECT_EQ(sn_->Remove("base").error().code(), EBUSY);
  // Failed creates left no directory behind; only p1x's was added.
  auto now = SnapshotDirs();
  EXPECT_EQ(now.size(), dirs.size() + 1);
  for (const std::string& d : now) EXPECT_EQ(d.find("new-"), std::string::npos) << d;
}

TEST_F(SnapshotterTest, ChildTreeTakesParentOwner) {
  auto m = sn_->Prepare("p1", "", {});
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(::chown(m->front().source.c_str(), 1234, 5678), 0);
  ASSERT_TRUE(sn_->Commit("base", "p1", {}).has_value());
  ASSERT_TRUE(sn_->Prepare("p2", "base", {}).has_value());
  struct stat st;
  ASSERT_EQ(::stat((Snap("2") + "/fs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(SnapshotterTest, UsageOfActiveIsMeasuredAndOfCommittedStored) {
  auto m = sn_->Prepare("p1", "", {});
  ASSERT_TRUE(m.has_value());
  const std::string fs = m->front().source;
  ASSERT_TRUE(WriteFileAtomic(fs + "/f", std::string(10000, 'x')).has_value());
  ASSERT_EQ(::link((fs + "/f").c_str(), (fs + "/hard").c_str()), 0);  // counted once
  struct stat root_st, file_st;
  ASSERT_EQ(::stat(fs.c_str(), &root_st), 0);
  ASSERT_EQ(::stat((fs + "/f").c_str(), &file_st), 0);
  const int64_t want = (root_st.st_blocks + file_st.st_blocks) * 512;
  auto u = sn_->Usage("p1");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->inodes, 2);
  EXPECT_EQ(u->size, want);
  ASSERT_TRUE(sn_->Commit("base", "p1", {}).has_value());
  ASSERT_EQ(::unlink((Snap("1") + "/fs/f").c_str()), 0);  // stored, not measured again
  auto c = sn_->Usage("base");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->inodes, 2);
  EXPECT_EQ(c->size, want);
}

TEST_F(SnapshotterTest, ListFiltersAsContainerd) {
  MakeChain();
  ASSERT_TRUE(sn_->Prepare("default/9/run", "mid", {{"containerd.io/gc.root", "x"}}).has_value());
  ASSERT_TRUE(sn_->View("view1", "base", {}).has_value());
  EXPECT_EQ(Names(sn_->List({}).value()),
            (std::vector<std::string>{"base", "default/9/run", "mid", "view1"}));
  EXPECT_EQ(Names(sn_->List({"kind==committed"}).value()),
            (std::vector<std::string>{"base", "mid"}));
  EXPECT_EQ(Names(sn_->List({"parent==base"}).value()), (std::vector<std::string>{"mid", "view1"}));
  EXPECT_EQ(Names(sn_->List({R"(labels."containerd.io/gc.root")"}).value()),
            (std::vector<std::string>{"default/9/run"}));
  EXPECT_EQ(Names(sn_->List({"name~=^default/", "kind==view"}).value()),
            (std::vector<std::string>{"default/9/run", "view1"}));
  EXPECT_EQ(Names(sn_->List({"name==mid,parent==base"}).value()),
            (std::vector<std::string>{"mid"}));
  auto bad = sn_->List({"name=="});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), EINVAL);
}

TEST_F(SnapshotterTest, RemoveAndCleanupDeleteDirectories) {
  MakeChain();
  ASSERT_TRUE(sn_->Prepare("p3", "mid", {}).has_value());
  EXPECT_EQ(SnapshotDirs(), (std::vector<std::string>{"1", "2", "3"}));
  ASSERT_TRUE(sn_->Remove("p3").has_value());
  EXPECT_EQ(SnapshotDirs(), (std::vector<std::string>{"1", "2"}));
  // A directory left over by a crash (a reserved id, a temporary) is removed by Cleanup.
  ASSERT_TRUE(MakeDirs(Snap("77") + "/fs").has_value());
  ASSERT_TRUE(MakeDirs(Snap("new-abc") + "/fs").has_value());
  ASSERT_TRUE(sn_->Cleanup().has_value());
  EXPECT_EQ(SnapshotDirs(), (std::vector<std::string>{"1", "2"}));
  ASSERT_TRUE(sn_->Remove("mid").has_value());
  ASSERT_TRUE(sn_->Remove("base").has_value());
  EXPECT_EQ(SnapshotDirs(), std::vector<std::string>{});
}

TEST_F(SnapshotterTest, RemoteSourceServesLayerAsCommittedSnapshot) {
  auto fake = std::make_shared<FakeSource>();
  const std::string tree = dir_ + "/lazy-tree";
  ASSERT_TRUE(MakeDirs(tree).has_value());
  fake->trees["sha256:chain1"] = tree;
  Open(fake);
  const SnapshotLabels labels = {{kLabelSnapshotRef, "sha256:chain1"},
                                 {kLabelCriLayerDigest, "sha256:layer1"}};
  auto p = sn_->Prepare("default/1/extract sha256:chain1", "", labels);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code(), EEXIST);
  EXPECT_EQ(p.error().message(), "target snapshot sha256:chain1: already exists");
  EXPECT_EQ(sn_->Stat("default/1/extract sha256:chain1").error().code(), ENOENT);
  auto info = sn_->Stat("sha256:chain1");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->kind, SnapshotKind::kCommitted);
  EXPECT_EQ(info->parent, "");
  EXPECT_EQ(info->labels.at(kLabelRemote), "remote snapshot");
  EXPECT_EQ(info->labels.at(kLabelSnapshotRef), "sha256:chain1");
  // containerd's follow-up query finds it.
  EXPECT_EQ(
      Names(
          sn_->List({R"(labels."containerd.io/snapshot.ref"==sha256:chain1,parent=="")"}).value()),
      (std::vector<std::string>{"sha256:chain1"}));
  EXPECT_EQ(SnapshotDirs(), std::vector<std::string>{});  // no directory of its own

  // Served before: the same chain on the same parent answers ALREADY_EXISTS again; on another
  // parent (containerd could not find it by its filter) it is an ordinary snapshot.
  auto again = sn_->Prepare("default/7/extract sha256:chain1", "", labels);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), EEXIST);
  ASSERT_TRUE(sn_->Prepare("p0", "", {}).has_value());
  ASSERT_TRUE(sn_->Commit("other-base", "p0", {}).has_value());
  auto other_parent = sn_->Prepare("ns2/1/extract sha256:chain1", "other-base", labels);
  ASSERT_TRUE(other_parent.has_value()) << other_parent.error().message();
  ASSERT_TRUE(sn_->Remove("ns2/1/extract sha256:chain1").has_value());
  ASSERT_TRUE(sn_->Remove("other-base").has_value());

  // A layer the source cannot serve falls back to the ordinary path.
  auto o = sn_->Prepare("default/2/extract sha256:chain2", "sha256:chain1",
                        {{kLabelSnapshotRef, "sha256:chain2"}});
  ASSERT_TRUE(o.has_value()) << o.error().message();
  const std::string id = SnapshotDirs().at(0);
  EXPECT_EQ(*o, (std::vector<SnapshotMount>{
                    {"overlay", "overlay",
                     Overlay({"workdir=" + Snap(id) + "/work", "upperdir=" + Snap(id) + "/fs",
                              "lowerdir=" + tree})}}));
  ASSERT_TRUE(sn_->Commit("sha256:chain2", "default/2/extract sha256:chain2", {}).has_value());
  auto view = sn_->View("v", "sha256:chain2", {});
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->front().options.back(), "lowerdir=" + Snap(id) + "/fs:" + tree);
  ASSERT_TRUE(sn_->Remove("v").has_value());
  ASSERT_TRUE(sn_->Remove("sha256:chain2").has_value());

  // Restart: the source is asked again; a moved tree is recorded.
  const std::string moved = dir_ + "/lazy-tree-2";
  ASSERT_TRUE(MakeDirs(moved).has_value());
  fake->trees["sha256:chain1"] = moved;
  const int calls_before = fake->calls;
  Open(fake);
  EXPECT_EQ(fake->calls, calls_before + 1);
  auto v = sn_->View("v2", "sha256:chain1", {});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, (std::vector<SnapshotMount>{{"bind", moved, {"ro", "rbind"}}}));
  ASSERT_TRUE(sn_->Remove("v2").has_value());
  ASSERT_TRUE(sn_->Remove("sha256:chain1").has_value());
  EXPECT_EQ(fake->forgotten, (std::vector<std::string>{"sha256:chain1"}));
  EXPECT_TRUE(Exists(moved));  // the source's directory is the source's to delete
}

TEST_F(SnapshotterTest, WithoutSourceOrLabelEverythingIsOrdinary) {
  auto p = sn_->Prepare("k", "", {{kLabelSnapshotRef, "sha256:c"}});
  ASSERT_TRUE(p.has_value());
  auto fake = std::make_shared<FakeSource>();
  fake->trees["sha256:c2"] = dir_;
  Open(fake);
  // No containerd.io/snapshot.ref label: the source is not asked.
  ASSERT_TRUE(sn_->Prepare("k2", "", {}).has_value());
  EXPECT_EQ(fake->calls, 0);
}

}  // namespace
}  // namespace hoist
