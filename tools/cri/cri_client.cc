#include "tools/cri/cri_client.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cri_subset.grpc.pb.h"

namespace hoist::cri {
namespace {

namespace v1 = ::runtime::v1;

const char* CodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "gRPC error";
  }
}

int CodeErrno(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::UNAVAILABLE:
      return ECONNREFUSED;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ETIMEDOUT;
    case grpc::StatusCode::NOT_FOUND:
      return ENOENT;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return EINVAL;
    case grpc::StatusCode::ALREADY_EXISTS:
      return EEXIST;
    case grpc::StatusCode::PERMISSION_DENIED:
      return EACCES;
    case grpc::StatusCode::UNIMPLEMENTED:
      return ENOSYS;
    default:
      return EIO;
  }
}

Error CallError(const char* method, const grpc::Status& s) {
  std::string msg = s.error_message();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return Error(CodeErrno(s.error_code()),
               std::string("CRI ") + method + ": " + CodeName(s.error_code()) + ": " + msg);
}

void FillNamespaces(const SecuritySpec& s, v1::NamespaceOption* ns) {
  ns->set_network(static_cast<v1::NamespaceMode>(s.network));
  ns->set_pid(static_cast<v1::NamespaceMode>(s.pid));
  ns->set_ipc(static_cast<v1::NamespaceMode>(s.ipc));
}

void FillPod(const PodSpec& pod, v1::PodSandboxConfig* c) {
  auto* m = c->mutable_metadata();
  m->set_name(pod.name);
  m->set_uid(pod.uid);
  m->set_namespace_(pod.namespace_name);
  m->set_attempt(pod.attempt);
  c->set_hostname(pod.hostname);
  c->set_log_directory(pod.log_directory);
  c->mutable_labels()->insert(pod.labels.begin(), pod.labels.end());
  c->mutable_annotations()->insert(pod.annotations.begin(), pod.annotations.end());
  auto* lx = c->mutable_linux();
  lx->set_cgroup_parent(pod.cgroup_parent);
  auto* sc = lx->mutable_security_context();
  FillNamespaces(pod.security, sc->mutable_namespace_options());
  sc->set_privileged(pod.security.privileged);
  sc->set_readonly_rootfs(pod.security.readonly_rootfs);
  if (pod.security.run_as_user) sc->mutable_run_as_user()->set_value(*pod.security.run_as_user);
}

void FillContainer(const ContainerSpec& ctr, v1::ContainerConfig* c) {
  c->mutable_metadata()->set_name(ctr.name);
  c->mutable_metadata()->set_attempt(ctr.attempt);
  c->mutable_image()->set_image(ctr.image);
  for (const auto& s : ctr.command) c->add_command(s);
  for (const auto& s : ctr.args) c->add_args(s);
  c->set_working_dir(ctr.working_dir);
  for (const auto& [k, v] : ctr.envs) {
    auto* kv = c->add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  c->mutable_labels()->insert(ctr.labels.begin(), ctr.labels.end());
  c->mutable_annotations()->insert(ctr.annotations.begin(), ctr.annotations.end());
  c->set_log_path(ctr.log_path);
  auto* sc = c->mutable_linux()->mutable_security_context();
  FillNamespaces(ctr.security, sc->mutable_namespace_options());
  sc->set_privileged(ctr.security.privileged);
  sc->set_readonly_rootfs(ctr.security.readonly_rootfs);
  if (ctr.security.run_as_user) sc->mutable_run_as_user()->set_value(*ctr.security.run_as_user);
}

ContainerState FromProto(v1::ContainerState s) {
  switch (s) {
    case v1::CONTAINER_CREATED:
      return ContainerState::kCreated;
    case v1::CONTAINER_RUNNING:
      return ContainerState::kRunning;
    case v1::CONTAINER_EXITED:
      return ContainerState::kExited;
    default:
      return ContainerState::kUnknown;
  }
}

}  // namespace

const char* ContainerStateName(ContainerState s) {
  switch (s) {
    case ContainerState::kCreated:
      return "CONTAINER_CREATED";
    case ContainerState::kRunning:
      return "CONTAINER_RUNNING";
    case ContainerState::kExited:
      return "CONTAINER_EXITED";
    case ContainerState::kUnknown:
      break;
  }
  return "CONTAINER_UNKNOWN";
}

struct CriClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::RuntimeService::Stub> runtime;
  std::unique_ptr<v1::ImageService::Stub> images;
  std::chrono::milliseconds timeout;

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }
};

CriClient::CriClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CriClient::~CriClient() = default;

Result<std::unique_ptr<CriClient>> CriClient::Connect(const std::string& address,
                                                      std::chrono::milliseconds timeout) {
  std::string path = address;
  if (path.starts_with("unix://")) path = path.substr(7);
  if (path.empty() || path[0] != '/') {
    return Fail(EINVAL, "the CRI address must be an absolute socket path or unix:///path, not '" +
                            address + "'");
  }
  // A plain connect first: a missing socket or one nobody listens on is an answer at once (gRPC
  // would retry until the deadline).
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Fail(ENAMETOOLONG, "the CRI socket path " + path + " is too long");
  }
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Fail(ErrnoError("socket"));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    const int err = errno;
    ::close(fd);
    if (rc != 0) {
      return Fail(ECONNREFUSED, "no CRI server answers on " + path + ": " + std::strerror(err));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->timeout = timeout;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  impl->channel =
      grpc::CreateCustomChannel("unix://" + path, grpc::InsecureChannelCredentials(), args);
  if (!impl->channel->WaitForConnected(std::chrono::system_clock::now() + timeout)) {
    return Fail(ECONNREFUSED, "no CRI server answers on " + path);
  }
  impl->runtime = v1::RuntimeService::NewStub(impl->channel);
  impl->images = v1::ImageService::NewStub(impl->channel);
  return std::unique_ptr<CriClient>(new CriClient(std::move(impl)));
}

Result<VersionInfo> CriClient::Version() {
  v1::VersionRequest req;
  req.set_version("v1");
  v1::VersionResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->Version(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("Version", s));
  }
  return VersionInfo{resp.version(), resp.runtime_name(), resp.runtime_version(),
                     resp.runtime_api_version()};
}

Result<std::string> CriClient::PullImage(const std::string& image, const PodSpec* pod) {
  v1::PullImageRequest req;
  req.mutable_image()->set_image(image);
  if (pod != nullptr) FillPod(*pod, req.mutable_sandbox_config());
  v1::PullImageResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->images->PullImage(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("PullImage", s));
  }
  return resp.image_ref();
}

Result<std::string> CriClient::ImageId(const std::string& image) {
  v1::ImageStatusRequest req;
  req.mutable_image()->set_image(image);
  v1::ImageStatusResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->images->ImageStatus(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("ImageStatus", s));
  }
  // The CRI answers a missing image with an empty status, not an error.
  if (!resp.has_image() || resp.image().id().empty()) {
    return Fail(ENOENT, "CRI ImageStatus: no image " + image);
  }
  return resp.image().id();
}

Result<std::string> CriClient::RunPodSandbox(const PodSpec& pod) {
  v1::RunPodSandboxRequest req;
  FillPod(pod, req.mutable_config());
  v1::RunPodSandboxResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->RunPodSandbox(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("RunPodSandbox", s));
  }
  return resp.pod_sandbox_id();
}

Status CriClient::StopPodSandbox(const std::string& pod_id) {
  v1::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(pod_id);
  v1::StopPodSandboxResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->StopPodSandbox(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("StopPodSandbox", s));
  }
  return Ok();
}

Status CriClient::RemovePodSandbox(const std::string& pod_id) {
  v1::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(pod_id);
  v1::RemovePodSandboxResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->RemovePodSandbox(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("RemovePodSandbox", s));
  }
  return Ok();
}

Result<std::string> CriClient::CreateContainer(const std::string& pod_id,
                                               const ContainerSpec& container, const PodSpec& pod) {
  v1::CreateContainerRequest req;
  req.set_pod_sandbox_id(pod_id);
  FillContainer(container, req.mutable_config());
  FillPod(pod, req.mutable_sandbox_config());
  v1::CreateContainerResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->CreateContainer(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("CreateContainer", s));
  }
  return resp.container_id();
}

Status CriClient::StartContainer(const std::string& id) {
  v1::StartContainerRequest req;
  req.set_container_id(id);
  v1::StartContainerResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->StartContainer(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("StartContainer", s));
  }
  return Ok();
}

Status CriClient::StopContainer(const std::string& id, int64_t timeout_seconds) {
  v1::StopContainerRequest req;
  req.set_container_id(id);
  req.set_timeout(timeout_seconds);
  v1::StopContainerResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->StopContainer(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("StopContainer", s));
  }
  return Ok();
}

Status CriClient::RemoveContainer(const std::string& id) {
  v1::RemoveContainerRequest req;
  req.set_container_id(id);
  v1::RemoveContainerResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->RemoveContainer(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("RemoveContainer", s));
  }
  return Ok();
}

Result<ContainerInfo> CriClient::ContainerStatus(const std::string& id) {
  v1::ContainerStatusRequest req;
  req.set_container_id(id);
  v1::ContainerStatusResponse resp;
  auto ctx = impl_->Context();
  if (grpc::Status s = impl_->runtime->ContainerStatus(ctx.get(), req, &resp); !s.ok()) {
    return Fail(CallError("ContainerStatus", s));
  }
  const v1::ContainerStatus& st = resp.status();
  ContainerInfo info;
  info.id = st.id();
  info.name = st.metadata().name();
  info.image = st.image().image();
  info.image_ref = st.image_ref();
  info.state = FromProto(st.state());
  info.created_at = st.created_at();
  info.started_at = st.started_at();
  info.finished_at = st.finished_at();
  info.exit_code = st.exit_code();
  info.reason = st.reason();
  info.message = st.message();
  info.log_path = st.log_path();
  return info;
}

}  // namespace hoist::cri
