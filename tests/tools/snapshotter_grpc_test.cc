// hoist-snapshotter's gRPC edge: the real SnapshotsService on a real unix socket, called through
// the generated client stub, as containerd's proxy plugin calls it. Checks the status codes that
// containerd's errdefs.FromGRPC turns back into its error classes (NotFound, AlreadyExists,
// InvalidArgument, FailedPrecondition), the messages, the mounts and infos on the wire, field
// masks and the streamed List.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "tools/snapshotter/grpc_service.h"

namespace hoist {
namespace {

namespace pb = containerd::services::snapshots::v1;

class SnapshotterGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/hoist-snap-grpc-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    auto sn = Snapshotter::Open({.root = dir_ + "/root"});
    ASSERT_TRUE(sn.has_value()) << sn.error().message();
    sn_ = std::move(*sn);
    service_ = std::make_unique<SnapshotsService>(sn_.get());
    const std::string address = "unix:" + dir_ + "/s.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ =
        pb::Snapshots::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
    service_.reset();
    sn_.reset();
    (void)RemoveTree(dir_);
  }

  grpc::Status Prepare(const std::string& key, const std::string& parent,
                       pb::PrepareSnapshotResponse* resp = nullptr,
                       std::map<std::string, std::string> labels = {}) {
    grpc::ClientContext ctx;
    pb::PrepareSnapshotRequest req;
    req.set_snapshotter("hoist");
    req.set_key(key);
    req.set_parent(parent);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    pb::PrepareSnapshotResponse local;
    return stub_->Prepare(&ctx, req, resp ? resp : &local);
  }
  grpc::Status View(const std::string& key, const std::string& parent) {
    grpc::ClientContext ctx;
    pb::ViewSnapshotRequest req;
    req.set_key(key);
    req.set_parent(parent);
    pb::ViewSnapshotResponse resp;
    return stub_->View(&ctx, req, &resp);
  }
  grpc::Status Commit(const std::string& name, const std::string& key) {
    grpc::ClientContext ctx;
    pb::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    (*req.mutable_labels())["containerd.io/snapshot.ref"] = name;
    google::protobuf::Empty resp;
    return stub_->Commit(&ctx, req, &resp);
  }
  grpc::Status Remove(const std::string& key) {
    grpc::ClientContext ctx;
    pb::RemoveSnapshotRequest req;
    req.set_key(key);
    google::protobuf::Empty resp;
    return stub_->Remove(&ctx, req, &resp);
  }
  grpc::Status Stat(const std::string& key, pb::StatSnapshotResponse* resp) {
    grpc::ClientContext ctx;
    pb::StatSnapshotRequest req;
    req.set_key(key);
    return stub_->Stat(&ctx, req, resp);
  }
  // The names List streams back, or the status it failed with.
  grpc::Status List(const std::vector<std::string>& filters, std::vector<std::string>* names) {
    grpc::ClientContext ctx;
    pb::ListSnapshotsRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    auto reader = stub_->List(&ctx, req);
    pb::ListSnapshotsResponse resp;
    while (reader->Read(&resp)) {
      for (const pb::Info& i : resp.info()) names->push_back(i.name());
    }
    return reader->Finish();
  }

  std::string dir_;
  std::unique_ptr<Snapshotter> sn_;
  std::unique_ptr<SnapshotsService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::Snapshots::Stub> stub_;
};

TEST_F(SnapshotterGrpcTest, ErrorCodesAsContainerdErrdefs) {
  pb::PrepareSnapshotResponse prep;
  ASSERT_TRUE(Prepare("k1", "", &prep).ok());
  ASSERT_EQ(prep.mounts_size(), 1);
  EXPECT_EQ(prep.mounts(0).type(), "bind");
  EXPECT_EQ(prep.mounts(0).source(), dir_ + "/root/snapshots/1/fs");
  EXPECT_EQ(
      std::vector<std::string>(prep.mounts(0).options().begin(), prep.mounts(0).options().end()),
      (std::vector<std::string>{"rw", "rbind"}));

  grpc::Status dup = Prepare("k1", "");
  EXPECT_EQ(dup.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(dup.error_message(), "snapshot k1 already exists");
  EXPECT_EQ(Prepare("k2", "nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Prepare("k2", "k1").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(View("v1", "").ok());
  grpc::Status commit_view = Commit("c", "v1");
  EXPECT_EQ(commit_view.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(commit_view.error_message(), "snapshot v1 is not active");
  ASSERT_TRUE(Commit("base", "k1").ok());
  EXPECT_EQ(Commit("base", "v1").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(Prepare("child", "base").ok());
  grpc::Status rm = Remove("base");
  EXPECT_EQ(rm.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(rm.error_message(), "cannot remove snapshot base with child");
  EXPECT_EQ(Remove("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    pb::MountsRequest req;
    req.set_key("base");
    pb::MountsResponse resp;
    EXPECT_EQ(stub_->Mounts(&ctx, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  pb::StatSnapshotResponse st;
  EXPECT_EQ(Stat("nope", &st).error_code(), grpc::StatusCode::NOT_FOUND);
  std::vector<std::string> names;
  grpc::Status bad = List({"name=="}, &names);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.error_message(), "filters: parse error: [name==]: expected value or quoted");
}

TEST_F(SnapshotterGrpcTest, InfoUpdateListAndUsageOnTheWire) {
  ASSERT_TRUE(Prepare("k1", "", nullptr, {{"a", "1"}}).ok());
  ASSERT_TRUE(Commit("base", "k1").ok());
  pb::StatSnapshotResponse st;
  ASSERT_TRUE(Stat("base", &st).ok());
  EXPECT_EQ(st.info().name(), "base");
  EXPECT_EQ(st.info().parent(), "");
  EXPECT_EQ(st.info().kind(), pb::COMMITTED);
  EXPECT_GT(st.info().created_at().seconds(), 1700000000);
  EXPECT_EQ(st.info().labels().size(), 1u);
  EXPECT_EQ(st.info().labels().at("containerd.io/snapshot.ref"), "base");

  {
    grpc::ClientContext ctx;
    pb::UpdateSnapshotRequest req;
    req.mutable_info()->set_name("base");
    (*req.mutable_info()->mutable_labels())["containerd.io/gc.root"] = "now";
    req.mutable_update_mask()->add_paths("labels.containerd.io/gc.root");
    pb::UpdateSnapshotResponse resp;
    ASSERT_TRUE(stub_->Update(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.info().labels().size(), 2u);
    EXPECT_EQ(resp.info().labels().at("containerd.io/gc.root"), "now");
  }
  {
    grpc::ClientContext ctx;
    pb::UpdateSnapshotRequest req;
    req.mutable_info()->set_name("base");
    req.mutable_update_mask()->add_paths("parent");
    pb::UpdateSnapshotResponse resp;
    EXPECT_EQ(stub_->Update(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }

  // More than one streamed batch (100 infos each).
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(View("v" + std::to_string(1000 + i), "base").ok());
  std::vector<std::string> all;
  ASSERT_TRUE(List({}, &all).ok());
  EXPECT_EQ(all.size(), 251u);
  std::vector<std::string> rooted;
  ASSERT_TRUE(List({R"(labels."containerd.io/gc.root"==now)"}, &rooted).ok());
  EXPECT_EQ(rooted, std::vector<std::string>{"base"});

  {
    grpc::ClientContext ctx;
    pb::UsageRequest req;
    req.set_key("base");
    pb::UsageResponse resp;
    ASSERT_TRUE(stub_->Usage(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.inodes(), 1);  // the empty tree's root
  }
  {
    grpc::ClientContext ctx;
    pb::CleanupRequest req;
    google::protobuf::Empty resp;
    EXPECT_TRUE(stub_->Cleanup(&ctx, req, &resp).ok());
  }
}

}  // namespace
}  // namespace hoist
