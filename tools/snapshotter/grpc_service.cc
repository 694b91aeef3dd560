#include "tools/snapshotter/grpc_service.h"

#include "base/log.h"

namespace hoist {
namespace {

namespace pb = containerd::services::snapshots::v1;

constexpr int kListBatch = 100;  // infos per streamed List message

SnapshotLabels LabelsOf(const google::protobuf::Map<std::string, std::string>& m) {
  return SnapshotLabels(m.begin(), m.end());
}

void SetTimestamp(google::protobuf::Timestamp* t, int64_t ns) {
  int64_t sec = ns / 1000000000;
  int64_t rem = ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    --sec;
  }
  t->set_seconds(sec);
  t->set_nanos(static_cast<int32_t>(rem));
}

int64_t NanosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000000 + t.nanos();
}

void ToProto(const SnapshotInfo& in, pb::Info* out) {
  out->set_name(in.name);
  out->set_parent(in.parent);
  out->set_kind(static_cast<pb::Kind>(static_cast<int>(in.kind)));
  SetTimestamp(out->mutable_created_at(), in.created_ns);
  SetTimestamp(out->mutable_updated_at(), in.updated_ns);
  for (const auto& [k, v] : in.labels) (*out->mutable_labels())[k] = v;
}

void ToProto(const std::vector<SnapshotMount>& in,
             google::protobuf::RepeatedPtrField<containerd::types::Mount>* out) {
  for (const SnapshotMount& m : in) {
    containerd::types::Mount* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const std::string& o : m.options) pm->add_options(o);
  }
}

// One debug line per call, one warning line per internal failure.
grpc::Status Done(const char* method, const std::string& key, const Status& s) {
  if (s) {
    HOIST_LOG(kDebug) << method << " " << key << ": ok";
    return grpc::Status::OK;
  }
  const int code = s.error().code();
  if (code == ENOENT || code == EEXIST || code == EINVAL || code == EBUSY) {
    HOIST_LOG(kDebug) << method << " " << key << ": " << s.error().message();
  } else {
    HOIST_LOG(kWarning) << method << " " << key << " failed: " << s.error().message();
  }
  return ToGrpcStatus(s.error());
}

template <class T>
Status AsStatus(const Result<T>& r) {
  if (r) return Ok();
  return Fail(r.error());
}

}  // namespace

grpc::Status ToGrpcStatus(const Error& e) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (e.code()) {
    case ENOENT:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case EEXIST:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case EINVAL:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case EBUSY:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    default:
      break;
  }
  return grpc::Status(code, e.message());
}

grpc::Status SnapshotsService::Prepare(grpc::ServerContext*, const PrepareReq* req,
                                       PrepareResp* resp) {
  auto r = sn_->Prepare(req->key(), req->parent(), LabelsOf(req->labels()));
  if (r) ToProto(*r, resp->mutable_mounts());
  return Done("Prepare", req->key(), AsStatus(r));
}

grpc::Status SnapshotsService::View(grpc::ServerContext*, const ViewReq* req, ViewResp* resp) {
  auto r = sn_->View(req->key(), req->parent(), LabelsOf(req->labels()));
  if (r) ToProto(*r, resp->mutable_mounts());
  return Done("View", req->key(), AsStatus(r));
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext*, const MountsReq* req,
                                      MountsResp* resp) {
  auto r = sn_->Mounts(req->key());
  if (r) ToProto(*r, resp->mutable_mounts());
  return Done("Mounts", req->key(), AsStatus(r));
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext*, const CommitReq* req, Empty*) {
  return Done("Commit", req->key(), sn_->Commit(req->name(), req->key(), LabelsOf(req->labels())));
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext*, const RemoveReq* req, Empty*) {
  return Done("Remove", req->key(), sn_->Remove(req->key()));
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext*, const StatReq* req, StatResp* resp) {
  auto r = sn_->Stat(req->key());
  if (r) ToProto(*r, resp->mutable_info());
  return Done("Stat", req->key(), AsStatus(r));
}

grpc::Status SnapshotsService::Update(grpc::ServerContext*, const UpdateReq* req,
                                      UpdateResp* resp) {
  SnapshotInfo info;
  info.name = req->info().name();
  info.parent = req->info().parent();
  info.kind = static_cast<SnapshotKind>(req->info().kind());
  info.created_ns = NanosOf(req->info().created_at());
  info.updated_ns = NanosOf(req->info().updated_at());
  info.labels = LabelsOf(req->info().labels());
  std::vector<std::string> paths(req->update_mask().paths().begin(),
                                 req->update_mask().paths().end());
  auto r = sn_->Update(info, paths);
  if (r) ToProto(*r, resp->mutable_info());
  return Done("Update", info.name, AsStatus(r));
}

grpc::Status SnapshotsService::List(grpc::ServerContext*, const ListReq* req,
                                    grpc::ServerWriter<ListResp>* writer) {
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  auto r = sn_->List(filters);
  if (!r) return Done("List", "", AsStatus(r));
  ListResp batch;
  for (const SnapshotInfo& info : *r) {
    ToProto(info, batch.add_info());
    if (batch.info_size() == kListBatch) {
      if (!writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
      batch.Clear();
    }
  }
  if (batch.info_size() > 0 && !writer->Write(batch)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
  }
  return Done("List", "", Ok());
}

grpc::Status SnapshotsService::Usage(grpc::ServerContext*, const UsageReq* req, UsageResp* resp) {
  auto r = sn_->Usage(req->key());
  if (r) {
    resp->set_size(r->size);
    resp->set_inodes(r->inodes);
  }
  return Done("Usage", req->key(), AsStatus(r));
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext*, const CleanupReq*, Empty*) {
  return Done("Cleanup", "", sn_->Cleanup());
}

}  // namespace hoist
