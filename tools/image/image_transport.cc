#include "tools/image/image_transport.h"

#include "tools/image/image_impl.h"

namespace hoist {

std::string ImageName::ToString() const {
  switch (transport) {
    case Transport::kDocker:
      return "docker://" + path;
    case Transport::kOci:
      return "oci:" + path + (tag.empty() ? "" : ":" + tag);
    case Transport::kOciArchive:
      return "oci-archive:" + path + (tag.empty() ? "" : ":" + tag);
    case Transport::kDockerArchive:
      return "docker-archive:" + path;
    case Transport::kDir:
      return "dir:" + path;
    case Transport::kRootfs:
      return "rootfs:" + path;
  }
  return path;
}

namespace {

constexpr std::string_view kKnownTransports =
    "known: docker, oci, oci-archive, docker-archive, dir, rootfs";

bool IsTagChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, optionally followed by "@<digest>".
bool IsTagSpec(std::string_view s) {
  if (auto at = s.find('@'); at != std::string_view::npos) s = s.substr(0, at);
  if (s.empty() || s.size() > 128 || s.front() == '.' || s.front() == '-') return false;
  for (char c : s) {
    if (!IsTagChar(c)) return false;
  }
  return true;
}

// "5000/x": a port, then a path.
bool IsPortAndPath(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  return digits > 0 && digits < s.size() && s[digits] == '/';
}

}  // namespace

Result<ImageName> ParseImageName(const std::string& text) {
  ImageName n;
  const size_t colon = text.find(':');
  const std::string_view prefix =
      colon == std::string::npos ? std::string_view() : std::string_view(text).substr(0, colon);
  const std::string rest = colon == std::string::npos ? text : text.substr(colon + 1);
  if (text.starts_with("docker://")) {
    n.path = text.substr(9);
  } else if (colon == std::string::npos) {
    n.path = text;
  } else if (prefix == "docker") {
    return Fail(EINVAL, "\"" + text + "\": a registry reference is written docker://REF");
  } else if (prefix == "oci" || prefix == "oci-archive") {
    n.transport = prefix == "oci" ? ImageName::Transport::kOci : ImageName::Transport::kOciArchive;
    n.path = rest;
    // oci:DIR[:TAG], oci-archive:FILE[:TAG]: like skopeo, the first ':' separates the tag (the
    // path cannot hold one).
    if (auto c = n.path.find(':'); c != std::string::npos) {
      n.tag = n.path.substr(c + 1);
      n.path.resize(c);
      if (n.tag.empty()) return Fail(EINVAL, "\"" + text + "\": empty tag after ':'");
    }
  } else if (prefix == "docker-archive") {
    n.transport = ImageName::Transport::kDockerArchive;
    n.path = rest;
  } else if (prefix == "dir") {
    n.transport = ImageName::Transport::kDir;
    n.path = rest;
  } else if (prefix == "rootfs") {
    n.transport = ImageName::Transport::kRootfs;
    n.path = rest;
  } else {
    for (std::string_view t :
         {"containers-storage", "docker-daemon", "ostree", "sif", "tarball", "atomic"}) {
      if (prefix == t) {
        return Fail(ENOTSUP, "\"" + text + "\": transport \"" + std::string(t) +
                                 "\" is not supported (" + std::string(kKnownTransports) + ")");
      }
    }
    if (prefix.find_first_of("/.@") == std::string_view::npos && !IsPortAndPath(rest) &&
        !IsTagSpec(rest)) {
      return Fail(EINVAL, "\"" + text + "\": unknown transport \"" + std::string(prefix) + "\" (" +
                              std::string(kKnownTransports) + ")");
    }
    n.path = text;
  }
  if (n.path.empty()) return Fail(EINVAL, "\"" + text + "\": empty image name");
  if (n.transport == ImageName::Transport::kOci || n.transport == ImageName::Transport::kDir ||
      n.transport == ImageName::Transport::kRootfs) {
    // "DIR/" (as shell completion writes it) is DIR: a destination's temporary sibling and its
    // rename need the name without the slash.
    while (n.path.size() > 1 && n.path.back() == '/') n.path.pop_back();
  }
  return n;
}

Result<Reference> ParseRegistryReference(const std::string& text) {
  HOIST_ASSIGN_OR_RETURN(ImageName name, ParseImageName(text));
  if (name.transport != ImageName::Transport::kDocker) {
    return Fail(EINVAL, "\"" + text +
                            "\": not a registry reference (this verb takes REF or docker://REF; "
                            "hoist copy reads any transport)");
  }
  return Reference::Parse(name.path);
}

Result<std::string> RegistryReferenceText(const std::string& text) {
  HOIST_RETURN_IF_ERROR(ParseRegistryReference(text));
  return text.starts_with("docker://") ? text.substr(9) : text;
}

Result<std::unique_ptr<ImageSource>> OpenImageSource(const ImageName& name,
                                                     const SourceOptions& options) {
  switch (name.transport) {
    case ImageName::Transport::kDocker:
      return NewDockerSource(name.path, options.registry);
    case ImageName::Transport::kOci:
      return NewOciSource(name.path, name.tag);
    case ImageName::Transport::kOciArchive:
      return NewOciArchiveSource(name.path, name.tag, options);
    case ImageName::Transport::kDockerArchive:
      return NewDockerArchiveSource(name.path, options);
    case ImageName::Transport::kDir:
      return NewSkopeoDirSource(name.path);
    case ImageName::Transport::kRootfs:
      return NewRootfsSource(name.path, options);
  }
  return Fail(EINVAL, "unknown transport");
}

Result<std::unique_ptr<ImageDestination>> OpenImageDestination(const ImageName& name,
                                                               const RegistryOptions& registry) {
  switch (name.transport) {
    case ImageName::Transport::kDocker:
      return NewDockerDestination(name.path, registry);
    case ImageName::Transport::kOci:
      return NewOciDestination(name.path, name.tag);
    case ImageName::Transport::kOciArchive:
      return NewOciArchiveDestination(name.path, name.tag);
    case ImageName::Transport::kDir:
      return NewSkopeoDirDestination(name.path);
    case ImageName::Transport::kDockerArchive:
    case ImageName::Transport::kRootfs:
      break;
  }
  return Fail(ENOTSUP, name.ToString() +
                           ": only docker://, oci:, oci-archive: and dir: are supported as "
                           "destinations (hoist copy and hoist save write docker-archives)");
}

}  // namespace hoist
