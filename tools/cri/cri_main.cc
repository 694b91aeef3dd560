// hoist-cri: a small client of the Kubernetes CRI (crictl is not in Debian), for tests,
// benchmarks and trying hoist-snapshotter under containerd's CRI plugin by hand.
//
//   hoist-cri [--address SOCK] [--timeout S] VERB ...
//     version                         the runtime's name and versions
//     pull IMAGE [--pod POD.json]     pull through the CRI; prints the image ID
//     inspecti IMAGE                  the image ID, or an error when the runtime lacks it
//     runp POD.json                   run a pod sandbox; prints its ID
//     create POD_ID CTR.json POD.json create a container in the pod; prints its ID
//     start ID | stop ID [--grace S] | rm ID | stopp POD_ID | rmp POD_ID
//     inspect ID                      the container's status as JSON
//     wait ID                         wait until the container exits; prints its exit code
//     run CTR.json --pod POD.json [--timing] [--keep]
//                                     pull + runp + create + start + wait; prints what the
//                                     container added to its log file (CRI format: "TIME
//                                     stdout F text" lines) as it is, then stops and
//                                     removes the container and the pod (unless --keep). Exits
//                                     with the container's exit code; --timing prints one line
//                                     of phase durations in seconds on stderr.
// Errors: one line on stderr, exit 1 (125 for `run`, whose other codes are the container's).
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "base/file_util.h"
#include "base/status.h"
#include "tools/cri/cri_client.h"
#include "tools/cri/cri_spec.h"

namespace hoist::cri {
namespace {

constexpr int kRunFailed = 125;

int Report(const Error& e, int code = 1) {
  std::fprintf(stderr, "hoist-cri: %s\n", e.message().c_str());
  return code;
}

Result<PodSpec> LoadPod(const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParsePodSpec(text, path);
}

Result<ContainerSpec> LoadContainer(const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseContainerSpec(text, path);
}

// Polls the container's status until it has exited; `timeout` bounds the wait.
Result<ContainerInfo> WaitForExit(CriClient& c, const std::string& id,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(ContainerInfo info, c.ContainerStatus(id));
    if (info.state == ContainerState::kExited) return info;
    if (info.state == ContainerState::kUnknown) {
      return Fail(EIO, "container " + id + " is in state CONTAINER_UNKNOWN");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail(ETIMEDOUT, "container " + id + " did not exit within " +
                                 std::to_string(timeout.count() / 1000) + " s");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::string InfoJson(const ContainerInfo& i) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  auto str = [&w](const char* k, const std::string& v) {
    w.Key(k);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  w.StartObject();
  str("id", i.id);
  str("name", i.name);
  str("state", ContainerStateName(i.state));
  str("image", i.image);
  str("image_ref", i.image_ref);
  w.Key("created_at");
  w.Int64(i.created_at);
  w.Key("started_at");
  w.Int64(i.started_at);
  w.Key("finished_at");
  w.Int64(i.finished_at);
  w.Key("exit_code");
  w.Int(i.exit_code);
  str("reason", i.reason);
  str("message", i.message);
  str("log_path", i.log_path);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

struct RunOptions {
  std::string container_file, pod_file;
  bool timing = false, keep = false;
};

// The configs of `run`, checked before anything is sent.
Status LoadRunConfigs(const RunOptions& o, PodSpec* pod, ContainerSpec* ctr) {
  HOIST_ASSIGN_OR_RETURN(*pod, LoadPod(o.pod_file));
  HOIST_ASSIGN_OR_RETURN(*ctr, LoadContainer(o.container_file));
  if (pod->log_directory.empty()) {
    return Fail(EINVAL, o.pod_file + ": run needs the pod's log_directory");
  }
  if (ctr->log_path.empty()) {
    ctr->log_path = ctr->name + "_" + std::to_string(ctr->attempt) + ".log";
  }
  return Ok();
}

int Run(CriClient& c, const RunOptions& o, PodSpec* pod, ContainerSpec* ctr,
        std::chrono::milliseconds timeout) {
  if (Status s = MakeDirs(pod->log_directory); !s) return Report(s.error(), kRunFailed);

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto image = c.PullImage(ctr->image, &*pod);
  if (!image) return Report(image.error(), kRunFailed);
  const auto t_pull = Clock::now();
  auto pod_id = c.RunPodSandbox(*pod);
  if (!pod_id) return Report(pod_id.error(), kRunFailed);
  const auto t_runp = Clock::now();

  std::string ctr_id;
  int code = kRunFailed;
  std::string log;
  Clock::time_point t_create{}, t_start{}, t_exit{};
  // CRI appends to an existing log file: print only what this container adds.
  struct stat before;
  const std::string log_file = pod->log_directory + "/" + ctr->log_path;
  const size_t offset =
      ::stat(log_file.c_str(), &before) == 0 ? static_cast<size_t>(before.st_size) : 0;
  auto body = [&]() -> Status {
    HOIST_ASSIGN_OR_RETURN(ctr_id, c.CreateContainer(*pod_id, *ctr, *pod));
    t_create = Clock::now();
    HOIST_RETURN_IF_ERROR(c.StartContainer(ctr_id));
    t_start = Clock::now();
    HOIST_ASSIGN_OR_RETURN(ContainerInfo info, WaitForExit(c, ctr_id, timeout));
    t_exit = Clock::now();
    HOIST_ASSIGN_OR_RETURN(log, ReadFile(info.log_path));
    log.erase(0, std::min(offset, log.size()));
    code = info.exit_code;
    return Ok();
  };
  Status s = body();
  if (s) {
    std::fwrite(log.data(), 1, log.size(), stdout);
    std::fflush(stdout);
    if (o.timing) {
      std::fprintf(stderr,
                   "hoist-cri timing: pull=%.3f runp=%.3f create=%.3f start=%.3f exit=%.3f "
                   "total=%.3f\n",
                   Seconds(t_pull - t0), Seconds(t_runp - t_pull), Seconds(t_create - t_runp),
                   Seconds(t_start - t_create), Seconds(t_exit - t_start), Seconds(t_exit - t0));
    }
  } else {
    code = Report(s.error(), kRunFailed);
  }
  if (o.keep) {
    std::fprintf(stderr, "hoist-cri: kept pod %s, container %s\n", pod_id->c_str(), ctr_id.c_str());
    return code;
  }
  // Clean up even after a failure; a cleanup error is reported and fails the run.
  Status cleanup = Ok();
  if (!ctr_id.empty()) {
    if (cleanup) cleanup = c.StopContainer(ctr_id, 0);
    if (cleanup) cleanup = c.RemoveContainer(ctr_id);
  }
  if (cleanup) cleanup = c.StopPodSandbox(*pod_id);
  if (cleanup) cleanup = c.RemovePodSandbox(*pod_id);
  if (!cleanup) {
    Report(cleanup.error());
    return kRunFailed;
  }
  return code;
}

int Main(int argc, char** argv) {
  CLI::App app{"hoist-cri: a small Kubernetes CRI client", "hoist-cri"};
  app.require_subcommand(1);
  std::string address = "/run/containerd/containerd.sock";
  double timeout_s = 300;
  app.add_option("--address", address, "the CRI server's unix socket");
  app.add_option("--timeout", timeout_s, "seconds allowed for each call and for `wait`")
      ->check(CLI::PositiveNumber);

  std::string image, pod_file, ctr_file, id;
  int64_t grace = 0;
  RunOptions run;
  auto* version = app.add_subcommand("version", "the runtime's name and versions");
  auto* pull = app.add_subcommand("pull", "pull an image; prints its ID");
  pull->add_option("IMAGE", image)->required();
  pull->add_option("--pod", pod_file, "the pod's config (sent with the pull)");
  auto* inspecti = app.add_subcommand("inspecti", "an image's ID");
  inspecti->add_option("IMAGE", image)->required();
  auto* runp = app.add_subcommand("runp", "run a pod sandbox; prints its ID");
  runp->add_option("POD.json", pod_file)->required();
  auto* create = app.add_subcommand("create", "create a container; prints its ID");
  create->add_option("POD_ID", id)->required();
  create->add_option("CTR.json", ctr_file)->required();
  create->add_option("POD.json", pod_file)->required();
  auto* start = app.add_subcommand("start", "start a container");
  start->add_option("ID", id)->required();
  auto* stop = app.add_subcommand("stop", "stop a container");
  stop->add_option("ID", id)->required();
  stop->add_option("--grace", grace, "seconds between SIGTERM and SIGKILL");
  auto* rm = app.add_subcommand("rm", "remove a container");
  rm->add_option("ID", id)->required();
  auto* stopp = app.add_subcommand("stopp", "stop a pod sandbox");
  stopp->add_option("POD_ID", id)->required();
  auto* rmp = app.add_subcommand("rmp", "remove a pod sandbox");
  rmp->add_option("POD_ID", id)->required();
  auto* inspect = app.add_subcommand("inspect", "a container's status as JSON");
  inspect->add_option("ID", id)->required();
  auto* wait = app.add_subcommand("wait", "wait for a container to exit; prints its exit code");
  wait->add_option("ID", id)->required();
  auto* run_cmd = app.add_subcommand("run", "pull, run the pod and the container, print its log");
  run_cmd->add_option("CTR.json", run.container_file)->required();
  run_cmd->add_option("--pod", run.pod_file, "the pod's config")->required();
  run_cmd->add_flag("--timing", run.timing, "print phase durations on stderr");
  run_cmd->add_flag("--keep", run.keep, "keep the container and the pod");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "hoist-cri: %s\n", e.what());
    return run_cmd->parsed() ? kRunFailed : 1;
  }
  const int fail_code = run_cmd->parsed() ? kRunFailed : 1;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  // Configs are read and checked before connecting: bad input never reaches the runtime.
  PodSpec pod;
  ContainerSpec ctr;
  Status loaded = Ok();
  if (run_cmd->parsed()) {
    loaded = LoadRunConfigs(run, &pod, &ctr);
  } else if (create->parsed()) {
    auto p = LoadPod(pod_file);
    auto k = p ? LoadContainer(ctr_file) : Result<ContainerSpec>(Fail(p.error()));
    if (!k) loaded = Fail(k.error());
    if (loaded) {
      pod = std::move(*p);
      ctr = std::move(*k);
    }
  } else if (!pod_file.empty()) {
    auto p = LoadPod(pod_file);
    if (p)
      pod = std::move(*p);
    else
      loaded = Fail(p.error());
  }
  if (!loaded) return Report(loaded.error(), fail_code);
  auto client = CriClient::Connect(address, timeout);
  if (!client) return Report(client.error(), fail_code);
  CriClient& c = **client;

  auto print = [](const std::string& s) {
    std::printf("%s\n", s.c_str());
    return 0;
  };
  if (version->parsed()) {
    auto v = c.Version();
    if (!v) return Report(v.error());
    std::printf("Version: %s\nRuntimeName: %s\nRuntimeVersion: %s\nRuntimeApiVersion: %s\n",
                v->version.c_str(), v->runtime_name.c_str(), v->runtime_version.c_str(),
                v->runtime_api_version.c_str());
    return 0;
  }
  if (pull->parsed()) {
    auto r = c.PullImage(image, pod_file.empty() ? nullptr : &pod);
    return r ? print(*r) : Report(r.error());
  }
  if (inspecti->parsed()) {
    auto r = c.ImageId(image);
    return r ? print(*r) : Report(r.error());
  }
  if (runp->parsed()) {
    auto r = c.RunPodSandbox(pod);
    return r ? print(*r) : Report(r.error());
  }
  if (create->parsed()) {
    auto r = c.CreateContainer(id, ctr, pod);
    return r ? print(*r) : Report(r.error());
  }
  if (inspect->parsed()) {
    auto r = c.ContainerStatus(id);
    if (!r) return Report(r.error());
    std::fputs(InfoJson(*r).c_str(), stdout);
    return 0;
  }
  if (wait->parsed()) {
    auto r = WaitForExit(c, id, timeout);
    if (!r) return Report(r.error());
    std::printf("%d\n", r->exit_code);
    return 0;
  }
  if (run_cmd->parsed()) return Run(c, run, &pod, &ctr, timeout);
  Status s = Ok();
  if (start->parsed()) s = c.StartContainer(id);
  if (stop->parsed()) s = c.StopContainer(id, grace);
  if (rm->parsed()) s = c.RemoveContainer(id);
  if (stopp->parsed()) s = c.StopPodSandbox(id);
  if (rmp->parsed()) s = c.RemovePodSandbox(id);
  return s ? 0 : Report(s.error());
}

}  // namespace
}  // namespace hoist::cri

int main(int argc, char** argv) { return hoist::cri::Main(argc, argv); }
