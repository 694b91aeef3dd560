#include "tools/cri/cri_spec.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <functional>

namespace hoist::cri {
namespace {

using rapidjson::Value;

// Walks one JSON object with a path for errors; each field handler gets the member's value.
class Fields {
 public:
  using Handler = std::function<Status(const Value&, const std::string& path)>;

  Fields(std::string_view what, std::string path) : what_(what), path_(std::move(path)) {}

  Fields& On(const char* key, Handler h) {
    handlers_.emplace_back(key, std::move(h));
    return *this;
  }

  Status Walk(const Value& v) const {
    if (!v.IsObject()) {
      return Fail(EINVAL, std::string(what_) + ": " + (path_.empty() ? "the document" : path_) +
                              ": must be an object");
    }
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const std::string key(it->name.GetString(), it->name.GetStringLength());
      const std::string path = path_.empty() ? key : path_ + "." + key;
      const Handler* h = nullptr;
      for (const auto& [k, handler] : handlers_) {
        if (key == k) h = &handler;
      }
      if (h == nullptr) return Fail(EINVAL, std::string(what_) + ": unknown field " + path);
      HOIST_RETURN_IF_ERROR((*h)(it->value, path));
    }
    return Ok();
  }

 private:
  std::string_view what_;
  std::string path_;
  std::vector<std::pair<std::string, Handler>> handlers_;
};

class Parser {
 public:
  explicit Parser(std::string_view what) : what_(what) {}

  std::unexpected<hoist::Error> Bad(const std::string& path, const char* problem) const {
    return Fail(EINVAL, std::string(what_) + ": " + path + ": " + problem);
  }

  Fields::Handler String(std::string* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsString()) return Bad(path, "must be a string");
      out->assign(v.GetString(), v.GetStringLength());
      return Ok();
    };
  }
  Fields::Handler Bool(bool* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsBool()) return Bad(path, "must be true or false");
      *out = v.GetBool();
      return Ok();
    };
  }
  Fields::Handler Uint32(uint32_t* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsUint()) return Bad(path, "must be an integer from 0 to 4294967295");
      *out = v.GetUint();
      return Ok();
    };
  }
  Fields::Handler Int64(std::optional<int64_t>* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsInt64()) return Bad(path, "must be a 64-bit integer");
      *out = v.GetInt64();
      return Ok();
    };
  }
  Fields::Handler Strings(std::vector<std::string>* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsArray()) return Bad(path, "must be an array of strings");
      out->clear();
      for (const Value& e : v.GetArray()) {
        if (!e.IsString()) return Bad(path, "must be an array of strings");
        out->emplace_back(e.GetString(), e.GetStringLength());
      }
      return Ok();
    };
  }
  Fields::Handler StringMap(std::map<std::string, std::string>* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (!v.IsObject()) return Bad(path, "must be an object of strings");
      out->clear();
      for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
        if (!it->value.IsString()) return Bad(path, "must be an object of strings");
        (*out)[std::string(it->name.GetString(), it->name.GetStringLength())] =
            std::string(it->value.GetString(), it->value.GetStringLength());
      }
      return Ok();
    };
  }
  Fields::Handler Mode(NamespaceMode* out) const {
    return [this, out](const Value& v, const std::string& path) -> Status {
      if (v.IsString()) {
        const std::string_view s(v.GetString(), v.GetStringLength());
        if (s == "POD")
          *out = NamespaceMode::kPod;
        else if (s == "CONTAINER")
          *out = NamespaceMode::kContainer;
        else if (s == "NODE")
          *out = NamespaceMode::kNode;
        else
          return Bad(path, "must be POD, CONTAINER or NODE");
        return Ok();
      }
      if (v.IsUint() && v.GetUint() <= 2) {
        *out = static_cast<NamespaceMode>(v.GetUint());
        return Ok();
      }
      return Bad(path, "must be POD, CONTAINER or NODE");
    };
  }
  Fields::Handler Object(Fields fields) const {
    return [fields = std::move(fields)](const Value& v, const std::string&) -> Status {
      return fields.Walk(v);
    };
  }
  Fields Security(SecuritySpec* s, const std::string& path) const {
    Fields ns(what_, path + ".namespace_options");
    ns.On("network", Mode(&s->network)).On("pid", Mode(&s->pid)).On("ipc", Mode(&s->ipc));
    Fields f(what_, path);
    f.On("namespace_options", Object(std::move(ns)))
        .On("privileged", Bool(&s->privileged))
        .On("readonly_rootfs", Bool(&s->readonly_rootfs))
        .On("run_as_user", Int64(&s->run_as_user));
    return f;
  }

  Result<rapidjson::Document> Parse(std::string_view json) const {
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    if (doc.HasParseError()) {
      return Fail(EINVAL, std::string(what_) + ": invalid JSON: " +
                              rapidjson::GetParseError_En(doc.GetParseError()) + " at offset " +
                              std::to_string(doc.GetErrorOffset()));
    }
    return doc;
  }

  std::string_view what() const { return what_; }

 private:
  std::string_view what_;
};

}  // namespace

Result<PodSpec> ParsePodSpec(std::string_view json, std::string_view what) {
  Parser p(what);
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, p.Parse(json));
  PodSpec pod;
  Fields meta(what, "metadata");
  meta.On("name", p.String(&pod.name))
      .On("uid", p.String(&pod.uid))
      .On("namespace", p.String(&pod.namespace_name))
      .On("attempt", p.Uint32(&pod.attempt));
  Fields lx(what, "linux");
  lx.On("cgroup_parent", p.String(&pod.cgroup_parent))
      .On("security_context", p.Object(p.Security(&pod.security, "linux.security_context")));
  Fields top(what, "");
  top.On("metadata", p.Object(std::move(meta)))
      .On("hostname", p.String(&pod.hostname))
      .On("log_directory", p.String(&pod.log_directory))
      .On("labels", p.StringMap(&pod.labels))
      .On("annotations", p.StringMap(&pod.annotations))
      .On("linux", p.Object(std::move(lx)));
  HOIST_RETURN_IF_ERROR(top.Walk(doc));
  if (pod.name.empty()) return p.Bad("metadata.name", "is required");
  if (pod.uid.empty()) return p.Bad("metadata.uid", "is required");
  if (pod.namespace_name.empty()) return p.Bad("metadata.namespace", "is required");
  if (!pod.log_directory.empty() && pod.log_directory[0] != '/') {
    return p.Bad("log_directory", "must be an absolute path");
  }
  return pod;
}

Result<ContainerSpec> ParseContainerSpec(std::string_view json, std::string_view what) {
  Parser p(what);
  HOIST_ASSIGN_OR_RETURN(rapidjson::Document doc, p.Parse(json));
  ContainerSpec c;
  Fields meta(what, "metadata");
  meta.On("name", p.String(&c.name)).On("attempt", p.Uint32(&c.attempt));
  Fields image(what, "image");
  image.On("image", p.String(&c.image));
  Fields lx(what, "linux");
  lx.On("security_context", p.Object(p.Security(&c.security, "linux.security_context")));
  auto envs = [&p, &c](const Value& v, const std::string& path) -> Status {
    if (!v.IsArray()) return p.Bad(path, "must be an array of {\"key\", \"value\"} objects");
    c.envs.clear();
    for (const Value& e : v.GetArray()) {
      std::string key, value;
      Fields kv(p.what(), path + "[]");
      kv.On("key", p.String(&key)).On("value", p.String(&value));
      HOIST_RETURN_IF_ERROR(kv.Walk(e));
      if (key.empty()) return p.Bad(path + "[].key", "is required");
      c.envs.emplace_back(std::move(key), std::move(value));
    }
    return Ok();
  };
  auto image_field = [&p, &c, &image](const Value& v, const std::string& path) -> Status {
    if (v.IsString()) return p.String(&c.image)(v, path);
    return image.Walk(v);
  };
  Fields top(what, "");
  top.On("metadata", p.Object(std::move(meta)))
      .On("image", image_field)
      .On("command", p.Strings(&c.command))
      .On("args", p.Strings(&c.args))
      .On("working_dir", p.String(&c.working_dir))
      .On("envs", envs)
      .On("labels", p.StringMap(&c.labels))
      .On("annotations", p.StringMap(&c.annotations))
      .On("log_path", p.String(&c.log_path))
      .On("linux", p.Object(std::move(lx)));
  HOIST_RETURN_IF_ERROR(top.Walk(doc));
  if (c.name.empty()) return p.Bad("metadata.name", "is required");
  if (c.image.empty()) return p.Bad("image", "is required");
  if (!c.log_path.empty() && c.log_path[0] == '/') {
    return p.Bad("log_path", "must be relative to the pod's log_directory");
  }
  return c;
}

}  // namespace hoist::cri
