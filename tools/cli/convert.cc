#include "tools/cli/convert.h"

#include <stdlib.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "index/tar_path.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/convert/convert_image.h"

namespace hoist {
namespace {

struct ConvertFlags {
  std::string source;
  std::string destination;
  std::string platform;
  std::string prefetch_list;
  std::string work_dir;
  bool quiet = false;
  bool json = false;
  int compression_level = 3;
  int threads = 0;
  std::string cmd;
  std::string entrypoint;
  std::vector<std::string> env;
  std::string workdir;
  std::vector<std::string> labels;
  RegistryFlags registry;  // --insecure-registry only (convert has its own --platform)
};

// "[\"a\",\"b\"]" (JSON) or "a b" (split on whitespace).
Result<std::vector<std::string>> ParseCommand(const std::string& text, const char* flag) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  if (text.front() == '[') {
    rapidjson::Document doc;
    doc.Parse(text.c_str());
    if (doc.HasParseError() || !doc.IsArray()) {
      return Fail(EINVAL, std::string(flag) + ": not a JSON array of strings");
    }
    for (const auto& v : doc.GetArray()) {
      if (!v.IsString()) return Fail(EINVAL, std::string(flag) + ": not a JSON array of strings");
      out.emplace_back(v.GetString(), v.GetStringLength());
    }
    return out;
  }
  std::istringstream in(text);
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status Run(const ConvertFlags& f) {
  HOIST_ASSIGN_OR_RETURN(ImageName src_name, ParseImageName(f.source));
  HOIST_ASSIGN_OR_RETURN(ImageName dst_name, ParseImageName(f.destination));

  ConvertOptions options;
  if (!f.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(Platform p, Platform::Parse(f.platform));
    options.platform = p;
  }
  if (f.compression_level < 1 || f.compression_level > 22) {
    return Fail(EINVAL, "--compression-level must be between 1 and 22");
  }
  options.compression_level = f.compression_level;
  options.threads = f.threads;
  if (!f.prefetch_list.empty()) {
    HOIST_ASSIGN_OR_RETURN(std::string list, ReadFile(f.prefetch_list));
    std::istringstream in(list);
    std::set<std::string> seen;
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || line.front() == '#') continue;
      // Cleaned like tar names ("/usr/bin/x", "./usr/bin/x" and "usr/bin/x" are one path).
      auto path = CleanEntryPath(line);
      if (!path) {
        return Fail(path.error().Context(f.prefetch_list + " line " + std::to_string(number)));
      }
      if (!path->empty() && seen.insert(*path).second) options.prefetch.push_back(*path);
    }
  }
  options.progress = !f.quiet && !f.json && ::isatty(STDERR_FILENO);

  // The scratch directory (PARENT/hoist-convert-PID-XXXXXX) goes on SIGINT/SIGTERM/SIGHUP too,
  // and a dead run's is swept when the next one creates its own (base/file_util.h ScratchDir).
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  ScratchDir work;
  std::string parent = ScratchParent(f.work_dir);
  // Next to an oci: (or oci-archive:) destination, converted layers are renamed into place
  // instead of copied.
  if (f.work_dir.empty() && (dst_name.transport == ImageName::Transport::kOci ||
                             dst_name.transport == ImageName::Transport::kOciArchive)) {
    parent = ParentDir(dst_name.path);
  }
  HOIST_RETURN_IF_ERROR(work.Create(parent, "hoist-convert"));
  options.work_dir = work.path();

  SourceOptions source_options;
  source_options.work_dir = work.path();
  HOIST_ASSIGN_OR_RETURN(source_options.cmd, ParseCommand(f.cmd, "--cmd"));
  HOIST_ASSIGN_OR_RETURN(source_options.entrypoint, ParseCommand(f.entrypoint, "--entrypoint"));
  source_options.env = f.env;
  source_options.workdir = f.workdir;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      return Fail(EINVAL, "--label \"" + l + "\" is not KEY=VALUE");
    source_options.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  if (options.platform) {
    source_options.os = options.platform->os;
    source_options.architecture = options.platform->architecture;
  }

  HOIST_ASSIGN_OR_RETURN(source_options.registry, f.registry.Options());
  HOIST_ASSIGN_OR_RETURN(auto source, OpenImageSource(src_name, source_options));
  HOIST_ASSIGN_OR_RETURN(auto destination, OpenImageDestination(dst_name, source_options.registry));
  HOIST_ASSIGN_OR_RETURN(ConvertReport report, ConvertImage(*source, *destination, options));
  if (f.json) {
    std::printf("%s\n", ConvertReportJson(report).c_str());
  } else if (!f.quiet) {
    uint64_t in = 0, out = 0;
    for (const auto& l : report.layers) {
      in += l.bytes_in;
      out += l.bytes_out;
    }
    std::fprintf(stderr, "converted %zu layers (%.1f MB -> %.1f MB) in %.1f s: %s\n",
                 report.layers.size(), in / 1e6, out / 1e6, report.seconds,
                 report.manifest_digest.str().c_str());
  }
  return Ok();
}

}  // namespace

void RegisterConvert(CLI::App& app, VerbRunner* run) {
  auto flags = std::make_shared<ConvertFlags>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert an image to zstd:chunked (lazily mountable), layer by layer");
  cmd->add_option("SRC", flags->source,
                  "source: docker://REF (default), oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                  "docker-archive:FILE, dir:DIR (skopeo's layout), rootfs:DIR (a root "
                  "filesystem tree)")
      ->required();
  cmd->add_option("DST", flags->destination,
                  "destination: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG] or dir:DIR")
      ->required();
  cmd->add_option("--platform", flags->platform,
                  "convert only this platform of a multi-platform image (os/arch[/variant]); "
                  "the destination is then that platform's manifest alone, not a one-entry "
                  "index (as skopeo copy without --all writes). Without it every platform is "
                  "converted and the destination is an OCI image index");
  cmd->add_option("--prefetch-list", flags->prefetch_list,
                  "file listing paths (one per line, in priority order) to move to the front of "
                  "their layer and mark for prefetch (a listed symlink brings the file it leads to "
                  "in the same layer); the reordered layers get new diff_ids (and the config a "
                  "new digest)");
  cmd->add_option("--compression-level", flags->compression_level, "zstd level (1-22)")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads, "compression threads (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--work-dir", flags->work_dir, "scratch directory for converted layers");
  cmd->add_flag("-q,--quiet", flags->quiet, "no progress display");
  cmd->add_flag("--json", flags->json, "print a JSON summary on stdout");
  cmd->add_option("--cmd", flags->cmd, "rootfs: config Cmd (JSON array or words)");
  cmd->add_option("--entrypoint", flags->entrypoint,
                  "rootfs: config Entrypoint (JSON array or words)");
  cmd->add_option("--env", flags->env, "rootfs: config Env entry KEY=VALUE (repeatable)");
  cmd->add_option("--workdir", flags->workdir, "rootfs: config WorkingDir");
  cmd->add_option("--label", flags->labels, "rootfs: config label KEY=VALUE (repeatable)");
  flags->registry.AddInsecureRegistry(cmd);
  cmd->callback([flags, run] {
    *run = [flags]() -> int {
      Status st = Run(*flags);
      if (!st) return ReportError("convert", st.error().message());
      return 0;
    };
  });
}

}  // namespace hoist
