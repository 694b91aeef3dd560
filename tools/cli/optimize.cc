// hoist optimize [options] SRC [DST] [-- CMD ARGS...]: learns which files a workload needs and
// converts the image with them first (like ctr-remote's optimize).
//
//   1. SRC (a registry image) is resolved to one platform's manifest (--platform, else the
//      host's) and that manifest, pinned by digest, is mounted lazily as a runc bundle (the
//      bundle `hoist run` makes) with -o trace=FILE (fusefs/trace_recorder.h);
//   2. the command (CMD ARGS, replacing entrypoint and cmd; else the image's entrypoint + cmd) runs
//   in a container (runc)
//      until it exits or --timeout SECONDS pass (default 10; a server never exits: what it
//      opened until then is the trace), when the container is killed;
//   3. the bundle is removed (unmounted; the daemon writes the trace as it ends);
//   4. with DST: SRC is converted to DST (hoist convert) with the traced files as the prefetch
//      list (marked and moved to the front of their layers, in first-open order);
//      with --trace-out FILE: the trace (fusefs/access_trace.h) is kept in FILE;
//      with --attach: the trace is published as an OCI referrer of the traced manifest
//      (artifactType and blob media type application/vnd.hoist.trace.v1+json).
// At least one of DST, --trace-out and --attach is required. The container's stdout and stderr
// go to hoist's stderr; hoist's stdout carries only what it prints (the converted image's
// digest, the artifact's digest). Needs root (runc, FUSE with allow_other).
// Exit: 0 on success whatever the command's exit code; 1 with "hoist optimize: <what failed>".
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/spawn.h"
#include "fetcher/referrers.h"
#include "fusefs/access_trace.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/convert/convert_image.h"
#include "tools/runtime/bundle.h"

namespace hoist {
namespace {

using Clock = std::chrono::steady_clock;

struct OptimizeArgs {
  RegistryFlags registry;
  std::vector<std::string> positionals;  // SRC [DST] [-- CMD ARGS...], split by Optimize
  std::string source;
  std::string destination;
  std::vector<std::string> cmd;
  double timeout_seconds = 10;
  std::string trace_out;
  bool attach = false;
  std::string runtime = "runc";
  std::string cache;
  std::vector<std::string> env;
  std::string work_dir;
  int threads = 0;
  int compression_level = 3;
  bool quiet = false;
};

std::string ContainerId() {
  std::random_device rd;
  std::string id = "hoist-optimize-";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 12; ++i) id.push_back(kHex[rd() % 16]);
  return id;
}

void Note(const OptimizeArgs& a, const std::string& line) {
  if (!a.quiet) std::fprintf(stderr, "hoist optimize: %s\n", line.c_str());
}

// Runs the bundle's container until it exits or `timeout` passes (then kills it). Returns a
// note on how it ended.
Result<std::string> RunContainer(const std::string& runtime, const std::string& bundle_dir,
                                 std::chrono::milliseconds timeout) {
  const std::string id = ContainerId();
  SpawnOptions spawn;
  spawn.search_path = true;
  spawn.stdin_to = Stdio::Null();
  spawn.stdout_to = Stdio::Fd(STDERR_FILENO);
  HOIST_ASSIGN_OR_RETURN(Process runc, Spawn({runtime, "run", "--bundle", bundle_dir, id}, spawn));
  SpawnOptions quiet;
  quiet.search_path = true;
  quiet.stdin_to = Stdio::Null();
  quiet.stdout_to = Stdio::Null();
  quiet.stderr_to = Stdio::Null();
  auto runtime_do = [&](std::vector<std::string> args) {
    args.insert(args.begin(), runtime);
    if (auto p = Spawn(args, quiet)) (void)p->Wait();
  };
  const auto deadline = Clock::now() + timeout;
  bool killed = false;
  auto kill_deadline = Clock::time_point::max();
  while (true) {
    HOIST_ASSIGN_OR_RETURN(std::optional<ExitStatus> ended, runc.TryWait());
    if (ended) {
      runtime_do({"delete", "--force", id});
      if (killed) return std::string("the command was stopped after the timeout");
      return "the command exited " + std::to_string(ended->ShellCode());
    }
    const auto now = Clock::now();
    if (!killed && now >= deadline) {
      runtime_do({"kill", id, "KILL"});
      killed = true;
      kill_deadline = now + std::chrono::seconds(10);
    } else if (killed && now >= kill_deadline) {
      (void)runc.Signal(SIGKILL);  // the runtime itself hangs: the next TryWait reaps it
      kill_deadline = Clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status ConvertWithTrace(const OptimizeArgs& a, const AccessTrace& trace,
                        const std::string& scratch) {
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(a.source));
  HOIST_ASSIGN_OR_RETURN(ImageName dst_name, ParseImageName(a.destination));
  ConvertOptions options;
  if (!a.registry.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(Platform p, Platform::Parse(a.registry.platform));
    options.platform = p;
  }
  if (a.compression_level < 1 || a.compression_level > 22) {
    return Fail(EINVAL, "--compression-level must be between 1 and 22");
  }
  options.compression_level = a.compression_level;
  options.threads = a.threads;
  std::set<std::string> seen;
  for (const TracedFile& f : trace.files) {
    if (seen.insert(f.path).second) options.prefetch.push_back(f.path);
  }
  options.progress = !a.quiet && ::isatty(STDERR_FILENO);
  const std::string work = scratch + "/convert";
  HOIST_RETURN_IF_ERROR(MakeDirs(work, 0700));
  options.work_dir = work;
  SourceOptions source_options;
  source_options.work_dir = work;
  HOIST_ASSIGN_OR_RETURN(source_options.registry, a.registry.Options());
  HOIST_ASSIGN_OR_RETURN(auto source, OpenImageSource(src_name, source_options));
  HOIST_ASSIGN_OR_RETURN(auto destination, OpenImageDestination(dst_name, source_options.registry));
  HOIST_ASSIGN_OR_RETURN(ConvertReport report, ConvertImage(*source, *destination, options));
  Note(a, "converted " + a.source + " to " + a.destination + " with " +
              std::to_string(options.prefetch.size()) + " files first");
  std::printf("%s\n", report.manifest_digest.str().c_str());
  return Ok();
}

// SRC [DST] [-- CMD ARGS...]
Status SplitPositionals(OptimizeArgs& a) {
  size_t i = 0;
  std::vector<std::string> images;
  for (; i < a.positionals.size() && a.positionals[i] != "--"; ++i) {
    images.push_back(a.positionals[i]);
  }
  if (i < a.positionals.size()) a.cmd.assign(a.positionals.begin() + i + 1, a.positionals.end());
  if (images.empty() || images.size() > 2) {
    return Fail(EINVAL, "usage: hoist optimize [options] SRC [DST] [-- CMD ARGS...]");
  }
  a.source = images[0];
  if (images.size() == 2) a.destination = images[1];
  return Ok();
}

Status Optimize(OptimizeArgs& a) {
  HOIST_RETURN_IF_ERROR(SplitPositionals(a));
  if (a.destination.empty() && a.trace_out.empty() && !a.attach) {
    return Fail(EINVAL, "nothing to do: give DST, --trace-out FILE or --attach");
  }
  if (!(a.timeout_seconds > 0) || a.timeout_seconds > 86400) {
    return Fail(EINVAL, "--timeout must be more than 0 and at most 86400 seconds");
  }
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(a.source));
  if (src_name.transport != ImageName::Transport::kDocker) {
    return Fail(EINVAL, "SRC must be a registry image (docker://REF): it is mounted lazily");
  }
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(src_name.path));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, a.registry.MakeClient());

  // 1. The platform's manifest, pinned: the trace, the mount and the referrer's subject all
  //    name the same manifest whatever the tag does meanwhile.
  HOIST_ASSIGN_OR_RETURN(PinnedManifest resolved, ResolvePinned(*client, ref));
  const Descriptor& subject = resolved.subject;
  const Reference pinned = ref.WithDigest(subject.digest);

  ScratchDir scratch;
  HOIST_RETURN_IF_ERROR(scratch.Create(ScratchParent(a.work_dir), "hoist-optimize"));
  const std::string trace_file = scratch.path() + "/trace.json";

  // 2. Mount and run.
  BundleOptions bo;
  bo.image = pinned.String();
  bo.dir = scratch.path() + "/bundle";
  bo.cache_dir = a.cache;
  bo.mount_options = {"trace=" + trace_file, "prefetch=none"};
  bo.insecure_registries = a.registry.insecure_registries;
  bo.log_level = a.registry.log_level;
  bo.cmd = a.cmd;
  if (!a.cmd.empty()) bo.entrypoint = std::vector<std::string>{};  // CMD is the whole command
  bo.env = a.env;
  HOIST_ASSIGN_OR_RETURN(Bundle bundle, CreateBundle(*client, bo));
  const auto started = Clock::now();
  auto ran =
      RunContainer(a.runtime, bundle.dir,
                   std::chrono::milliseconds(static_cast<int64_t>(a.timeout_seconds * 1000)));
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // 3. Unmount: the daemon writes the trace as it ends (RemoveBundle waits for it).
  Status removed = RemoveBundle(bundle.dir);
  if (!ran) return Fail(ran.error().Context("running the container"));
  HOIST_RETURN_IF_ERROR(removed);
  auto bytes = ReadFile(trace_file);
  if (!bytes) return Fail(bytes.error().Context("the mount left no trace"));
  HOIST_ASSIGN_OR_RETURN(AccessTrace trace, ParseAccessTrace(*bytes));
  if (trace.image != subject.digest) {
    return Fail(EIO, "the trace is of " + trace.image.str() + ", not of the mounted " +
                         subject.digest.str());
  }
  char line[160];
  std::snprintf(line, sizeof(line), "%s; %zu files opened in %.1f s", ran->c_str(),
                trace.files.size(), seconds);
  Note(a, line);

  // 4. Keep, publish, convert.
  if (!a.trace_out.empty()) {
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(a.trace_out, *bytes, 0644));
  }
  if (a.attach) {
    std::vector<ReferrerBlob> blobs = {ReferrerBlob{kAccessTraceMediaType, *bytes, {}}};
    auto artifact = PushReferrer(*client, ref, subject, kAccessTraceArtifactType, blobs, {});
    if (!artifact) return Fail(artifact.error().Context("publishing the trace"));
    Note(a, "published the trace as " + artifact->digest.str() + ", referring to " +
                subject.digest.str());
    std::printf("%s\n", artifact->digest.str().c_str());
  }
  if (!a.destination.empty()) HOIST_RETURN_IF_ERROR(ConvertWithTrace(a, trace, scratch.path()));
  return Ok();
}

}  // namespace

void RegisterOptimize(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<OptimizeArgs>();
  CLI::App* sub = app.add_subcommand(
      "optimize",
      "Run an image's workload on a lazy mount, record the files it opens, and convert the image "
      "with those files first (or keep/publish the trace)");
  args->registry.Add(sub);
  sub->add_option("--timeout", args->timeout_seconds,
                  "seconds the command may run before it is killed (the trace until then counts)")
      ->capture_default_str();
  sub->add_option("--trace-out", args->trace_out, "write the access trace (JSON) to FILE");
  sub->add_flag("--attach", args->attach,
                "publish the trace as an OCI referrer of SRC's manifest for the platform traced");
  sub->add_option("--runtime", args->runtime, "OCI runtime (default runc from PATH)");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("-e,--env", args->env, "Set an environment variable KEY=VALUE")
      ->allow_extra_args(false);
  sub->add_option("--work-dir", args->work_dir, "scratch directory (default $TMPDIR, /var/tmp)");
  sub->add_option("--compression-level", args->compression_level, "zstd level (1-22)")
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "compression threads (0 = all cores)");
  sub->add_flag("-q,--quiet", args->quiet, "print only the digests on stdout");
  sub->add_option("ARGS", args->positionals,
                  "SRC [DST] [-- CMD ARGS...]: the source image (docker://REF or REF); the "
                  "destination (docker://REF, oci:DIR[:TAG] or oci-archive:FILE[:TAG]); the "
                  "command (default: the image's entrypoint and cmd). Options come before SRC");
  sub->positionals_at_end();
  sub->prefix_command();
  sub->callback([args, run] {
    *run = [args] {
      Status s = Optimize(*args);
      if (!s) return ReportError("optimize", s.error().message());
      return 0;
    };
  });
}

}  // namespace hoist
