// Walking a mounted or unpacked root filesystem and comparing two such trees, for tests that
// check that one way of presenting an image (hoistfs, containerd's overlayfs mount, umoci unpack)
// shows exactly what another does.
//
//   auto want = WalkTree(bundle + "/rootfs");
//   auto got = WalkTree(mountpoint);
//   std::vector<std::string> diffs = CompareTrees(*want, *got);   // empty: the same tree
//
// Per path (relative, no leading "/"; the root itself is not listed): type, permission bits
// (incl. setuid/setgid/sticky), uid, gid, mtime (s and ns), size (files and symlinks), symlink
// target, device number of a character or block device, sha256 of a regular file's content
// (streamed, so big files are fine), every xattr the kernel lists (llistxattr), and hardlink
// identity as the smallest path sharing the inode.
//
// Thread-safety: free functions with no shared state. Errors: the failing system call's errno
// (opendir, lstat, open/read, readlink, llistxattr, lgetxattr), with the path; ENOTSUP from
// llistxattr means "no xattrs".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"

namespace hoist::harness {

struct TreeNode {
  char type = '?';  // f d l p c b (s: socket)
  mode_t mode = 0;  // st_mode & 07777
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t mtime_sec = 0;
  long mtime_nsec = 0;
  uint64_t size = 0;   // regular files and symlinks
  dev_t rdev = 0;      // character and block devices
  std::string target;  // symlinks
  std::string sha;     // regular files: "sha256:<hex>" of the content
  ino_t ino = 0;
  std::map<std::string, std::string> xattrs;
  std::string link_group;  // smallest path sharing this inode (non-directories)
};

// One line: "type=f mode=644 uid=0 ... xattrs={k=hex;}".
std::string DescribeNode(const TreeNode& n);

// Every entry under `root` (not following symlinks), keyed by relative path. The regular files
// named in `skip_content` (relative paths) are not read: their sha stays empty.
[[nodiscard]] Result<std::map<std::string, TreeNode>> WalkTree(
    const std::string& root, const std::set<std::string>& skip_content = {});

// Human-readable differences, empty when the trees are equal: "missing in <got_name>: p",
// "extra in <got_name>: p", or "p:\n  want ...\n  got  ...". Directory sizes are not compared.
std::vector<std::string> CompareTrees(const std::map<std::string, TreeNode>& want,
                                      const std::map<std::string, TreeNode>& got,
                                      const std::string& got_name = "mount");

}  // namespace hoist::harness
