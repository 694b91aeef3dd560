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
  }
  return path;
}

Result<ImageName> ParseImageName(const std::string& text) {
  ImageName n;
  auto strip = [&](std::string_view prefix) {
    if (!text.starts_with(prefix)) return false;
    n.path = text.substr(prefix.size());
    return true;
  };
  if (strip("docker://")) {
    n.transport = ImageName::Transport::kDocker;
  } else if (strip("oci:") || strip("oci-archive:")) {
    n.transport =
        text.starts_with("oci:") ? ImageName::Transport::kOci : ImageName::Transport::kOciArchive;
    // oci:DIR[:TAG], oci-archive:FILE[:TAG]: like skopeo, the first ':' separates the tag (the
    // path cannot hold one).
    if (auto colon = n.path.find(':'); colon != std::string::npos) {
      n.tag = n.path.substr(colon + 1);
      n.path.resize(colon);
      if (n.tag.empty()) return Fail(EINVAL, "\"" + text + "\": empty tag after ':'");
    }
  } else if (strip("docker-archive:")) {
    n.transport = ImageName::Transport::kDockerArchive;
  } else if (strip("dir:")) {
    n.transport = ImageName::Transport::kDir;
  } else {
    for (std::string_view t : {"docker-daemon:", "containers-storage:"}) {
      if (text.starts_with(t)) {
        return Fail(ENOTSUP,
                    "\"" + text + "\": transport " + std::string(t.substr(0, t.size() - 1)) +
                        " is not supported (use docker://, oci:, oci-archive:, docker-archive: or "
                        "dir:)");
      }
    }
    n.transport = ImageName::Transport::kDocker;
    n.path = text;
  }
  if (n.path.empty()) return Fail(EINVAL, "\"" + text + "\": empty image name");
  return n;
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
      return NewDirSource(name.path, options);
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
    case ImageName::Transport::kDockerArchive:
    case ImageName::Transport::kDir:
      break;
  }
  return Fail(ENOTSUP, name.ToString() +
                           ": only docker://, oci: and oci-archive: are supported as destinations "
                           "(hoist save writes docker-archives)");
}

}  // namespace hoist
