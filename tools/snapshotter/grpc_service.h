// SnapshotsService: containerd.services.snapshots.v1.Snapshots over gRPC, each call translated
// to the Snapshotter (snapshotter.h) and back. The request's `snapshotter` field is ignored: one
// hoist-snapshotter serves one proxy plugin name (docs/ARCHITECTURE.md says why).
//
// Errors map to the gRPC codes containerd's errdefs.FromGRPC turns back into its error classes:
// ENOENT NOT_FOUND, EEXIST ALREADY_EXISTS, EINVAL INVALID_ARGUMENT, EBUSY FAILED_PRECONDITION,
// anything else UNKNOWN; the message is the Error's.
// Thread-safety: gRPC calls the methods from its thread pool; Snapshotter is thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "tools/snapshotter/snapshotter.h"

namespace hoist {

// The gRPC status for an Error (see above).
grpc::Status ToGrpcStatus(const Error& e);

class SnapshotsService final : public containerd::services::snapshots::v1::Snapshots::Service {
 public:
  explicit SnapshotsService(Snapshotter* snapshotter) : sn_(snapshotter) {}

  using PrepareReq = containerd::services::snapshots::v1::PrepareSnapshotRequest;
  using PrepareResp = containerd::services::snapshots::v1::PrepareSnapshotResponse;
  using ViewReq = containerd::services::snapshots::v1::ViewSnapshotRequest;
  using ViewResp = containerd::services::snapshots::v1::ViewSnapshotResponse;
  using MountsReq = containerd::services::snapshots::v1::MountsRequest;
  using MountsResp = containerd::services::snapshots::v1::MountsResponse;
  using CommitReq = containerd::services::snapshots::v1::CommitSnapshotRequest;
  using RemoveReq = containerd::services::snapshots::v1::RemoveSnapshotRequest;
  using StatReq = containerd::services::snapshots::v1::StatSnapshotRequest;
  using StatResp = containerd::services::snapshots::v1::StatSnapshotResponse;
  using UpdateReq = containerd::services::snapshots::v1::UpdateSnapshotRequest;
  using UpdateResp = containerd::services::snapshots::v1::UpdateSnapshotResponse;
  using ListReq = containerd::services::snapshots::v1::ListSnapshotsRequest;
  using ListResp = containerd::services::snapshots::v1::ListSnapshotsResponse;
  using UsageReq = containerd::services::snapshots::v1::UsageRequest;
  using UsageResp = containerd::services::snapshots::v1::UsageResponse;
  using CleanupReq = containerd::services::snapshots::v1::CleanupRequest;
  using Empty = google::protobuf::Empty;

  grpc::Status Prepare(grpc::ServerContext*, const PrepareReq* req, PrepareResp* resp) override;
  grpc::Status View(grpc::ServerContext*, const ViewReq* req, ViewResp* resp) override;
  grpc::Status Mounts(grpc::ServerContext*, const MountsReq* req, MountsResp* resp) override;
  grpc::Status Commit(grpc::ServerContext*, const CommitReq* req, Empty* resp) override;
  grpc::Status Remove(grpc::ServerContext*, const RemoveReq* req, Empty* resp) override;
  grpc::Status Stat(grpc::ServerContext*, const StatReq* req, StatResp* resp) override;
  grpc::Status Update(grpc::ServerContext*, const UpdateReq* req, UpdateResp* resp) override;
  grpc::Status List(grpc::ServerContext*, const ListReq* req,
                    grpc::ServerWriter<ListResp>* writer) override;
  grpc::Status Usage(grpc::ServerContext*, const UsageReq* req, UsageResp* resp) override;
  grpc::Status Cleanup(grpc::ServerContext*, const CleanupReq* req, Empty* resp) override;

 private:
  Snapshotter* sn_;
};

}  // namespace hoist
