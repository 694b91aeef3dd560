#include "index/store_salvage.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/file_util.h"
#include "base/scoped_fd.h"

namespace hoist {
namespace {

// Frame: table u8, key length u32 LE, value length u32 LE, key, value.
constexpr size_t kFrameHeader = 9;

bool WriteAll(int fd, const void* data, size_t n) {
  return hoist::WriteAll(fd, std::string_view(static_cast<const char*>(data), n), "salvage pipe")
      .has_value();
}

[[noreturn]] void ChildMain(int out, const std::string& path, const std::vector<Table>& tables,
                            uint64_t max_value) {
  // Quiet: a sanitizer's report of a crash on a damaged page is not the parent's output.
  int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null >= 0) ::dup2(null, 2);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) _exit(1);
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) _exit(1);
  mdb_env_set_maxdbs(env, 32);
  // At least the file; liblmdb raises it to what the meta page records if that is more.
  const uint64_t map = (static_cast<uint64_t>(st.st_size) + (1 << 20)) & ~((1ull << 20) - 1);
  mdb_env_set_mapsize(env, map);
  if (mdb_env_open(env, path.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644) != 0) _exit(2);
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) != 0) _exit(3);
  for (Table t : tables) {
    MDB_dbi dbi = 0;
    if (mdb_dbi_open(txn, TableName(t), 0, &dbi) != 0) continue;
    MDB_cursor* cur = nullptr;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) continue;
    MDB_val k, v;
    for (MDB_cursor_op op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
      if (v.mv_size > max_value || k.mv_size > 511) continue;
      unsigned char head[kFrameHeader];
      head[0] = static_cast<unsigned char>(t);
      const uint32_t kl = static_cast<uint32_t>(k.mv_size), vl = static_cast<uint32_t>(v.mv_size);
      std::memcpy(head + 1, &kl, 4);
      std::memcpy(head + 5, &vl, 4);
      if (!WriteAll(out, head, sizeof head) || !WriteAll(out, k.mv_data, kl) ||
          !WriteAll(out, v.mv_data, vl)) {
        _exit(4);  // the parent stopped reading
      }
    }
  }
  _exit(0);
}

}  // namespace

Result<std::vector<SalvagedRecord>> ReadDamagedStore(const std::string& data_file,
                                                     const std::vector<Table>& tables,
                                                     const SalvageLimits& limits) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe"));
  ScopedFd in(fds[0]), out(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork"));
  if (pid == 0) {
    in.Release();
    ChildMain(out.get(), data_file, tables, limits.max_value);
  }
  out.Reset();
  const auto deadline = std::chrono::steady_clock::now() + limits.deadline;
  std::string buf;
  bool stopped = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || buf.size() > limits.max_bytes) {
      stopped = true;
      break;
    }
    struct pollfd p {
      in.get(), POLLIN, 0
    };
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;  // timeout: checked at the top
    char chunk[1 << 16];
    ssize_t n = ::read(in.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child finished or died
    buf.append(chunk, static_cast<size_t>(n));
  }
  if (stopped) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::vector<SalvagedRecord> out_records;
  size_t pos = 0;
  while (buf.size() - pos >= kFrameHeader) {
    uint32_t kl = 0, vl = 0;
    std::memcpy(&kl, buf.data() + pos + 1, 4);
    std::memcpy(&vl, buf.data() + pos + 5, 4);
    if (buf.size() - pos - kFrameHeader < static_cast<uint64_t>(kl) + vl) break;  // cut short
    const auto t = static_cast<Table>(static_cast<unsigned char>(buf[pos]));
    out_records.push_back(SalvagedRecord{t, buf.substr(pos + kFrameHeader, kl),
                                         buf.substr(pos + kFrameHeader + kl, vl)});
    pos += kFrameHeader + kl + vl;
  }
  return out_records;
}

}  // namespace hoist
