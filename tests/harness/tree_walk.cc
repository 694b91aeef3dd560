#include "tests/harness/tree_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sstream>

#include "base/digest.h"
#include "base/scoped_fd.h"
#include "tests/harness/oci_image.h"

namespace hoist::harness {
namespace {

Status ReadXattrs(const std::string& p, std::map<std::string, std::string>* out) {
  std::string names(8192, '\0');
  ssize_t len = ::llistxattr(p.c_str(), names.data(), names.size());
  if (len < 0) {
    if (errno == ENOTSUP) return Ok();
    return Fail(ErrnoError("llistxattr " + p));
  }
  for (ssize_t i = 0; i < len;) {
    std::string key(names.data() + i);
    i += static_cast<ssize_t>(key.size()) + 1;
    std::string val(65536, '\0');
    ssize_t vl = ::lgetxattr(p.c_str(), key.c_str(), val.data(), val.size());
    if (vl < 0) return Fail(ErrnoError("lgetxattr " + p + " " + key));
    val.resize(static_cast<size_t>(vl));
    (*out)[key] = std::move(val);
  }
  return Ok();
}

Status WalkInto(const std::string& root, const std::string& rel,
                const std::set<std::string>& skip_content, std::map<std::string, TreeNode>* out) {
  const std::string dir_path = rel.empty() ? root : root + "/" + rel;
  DIR* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr) return Fail(ErrnoError("opendir " + dir_path));
  std::vector<std::string> names;
  while (dirent* d = ::readdir(dir)) {
    std::string n = d->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    const std::string r = rel.empty() ? name : rel + "/" + name;
    const std::string p = root + "/" + r;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return Fail(ErrnoError("lstat " + p));
    TreeNode n;
    n.mode = st.st_mode & 07777;
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    n.mtime_sec = st.st_mtim.tv_sec;
    n.mtime_nsec = st.st_mtim.tv_nsec;
    n.ino = st.st_ino;
    if (S_ISREG(st.st_mode)) {
      n.type = 'f';
      n.size = static_cast<uint64_t>(st.st_size);
      if (!skip_content.contains(r)) {
        HOIST_ASSIGN_OR_RETURN(auto digest_size, DigestFile(p));
        n.sha = digest_size.first.str();
        if (digest_size.second != n.size) return Fail(EIO, p + ": read size differs from st_size");
      }
    } else if (S_ISDIR(st.st_mode)) {
      n.type = 'd';
    } else if (S_ISLNK(st.st_mode)) {
      n.type = 'l';
      n.size = static_cast<uint64_t>(st.st_size);
      char buf[4096];
      ssize_t k = ::readlink(p.c_str(), buf, sizeof(buf));
      if (k < 0) return Fail(ErrnoError("readlink " + p));
      n.target.assign(buf, static_cast<size_t>(k));
    } else if (S_ISFIFO(st.st_mode)) {
      n.type = 'p';
    } else if (S_ISCHR(st.st_mode)) {
      n.type = 'c';
      n.rdev = st.st_rdev;
    } else if (S_ISBLK(st.st_mode)) {
      n.type = 'b';
      n.rdev = st.st_rdev;
    } else if (S_ISSOCK(st.st_mode)) {
      n.type = 's';
    }
    HOIST_RETURN_IF_ERROR(ReadXattrs(p, &n.xattrs));
    (*out)[r] = n;
    if (n.type == 'd') HOIST_RETURN_IF_ERROR(WalkInto(root, r, skip_content, out));
  }
  return Ok();
}

}  // namespace

std::string DescribeNode(const TreeNode& n) {
  std::ostringstream o;
  o << "type=" << n.type << " mode=" << std::oct << n.mode << std::dec << " uid=" << n.uid
    << " gid=" << n.gid << " mtime=" << n.mtime_sec << "." << n.mtime_nsec << " size=" << n.size
    << " rdev=" << major(n.rdev) << "," << minor(n.rdev) << " target=" << n.target
    << " sha=" << n.sha.substr(0, 19) << " group=" << n.link_group << " xattrs={";
  for (auto& [k, v] : n.xattrs) o << k << "=" << HexEncode(v.data(), v.size()) << ";";
  o << "}";
  return o.str();
}

Result<std::map<std::string, TreeNode>> WalkTree(const std::string& root,
                                                 const std::set<std::string>& skip_content) {
  std::map<std::string, TreeNode> out;
  HOIST_RETURN_IF_ERROR(WalkInto(root, "", skip_content, &out));
  std::map<ino_t, std::string> first;
  for (auto& [path, n] : out) {
    if (n.type == 'd') continue;
    auto it = first.find(n.ino);
    if (it == first.end()) it = first.emplace(n.ino, path).first;  // map order: smallest first
    n.link_group = it->second;
  }
  return out;
}

std::vector<std::string> CompareTrees(const std::map<std::string, TreeNode>& want,
                                      const std::map<std::string, TreeNode>& got,
                                      const std::string& got_name) {
  std::vector<std::string> diffs;
  for (auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      diffs.push_back("missing in " + got_name + ": " + path);
      continue;
    }
    const TreeNode& g = it->second;
    bool same = w.type == g.type && w.mode == g.mode && w.uid == g.uid && w.gid == g.gid &&
                w.mtime_sec == g.mtime_sec && w.mtime_nsec == g.mtime_nsec && w.rdev == g.rdev &&
                w.target == g.target && w.sha == g.sha && w.xattrs == g.xattrs &&
                w.link_group == g.link_group && (w.type == 'd' || w.size == g.size);
    if (!same) {
      diffs.push_back(path + ":\n  want " + DescribeNode(w) + "\n  got  " + DescribeNode(g));
    }
  }
  for (auto& [path, g] : got) {
    if (!want.count(path)) diffs.push_back("extra in " + got_name + ": " + path);
  }
  return diffs;
}

}  // namespace hoist::harness
