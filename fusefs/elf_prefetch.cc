#include "fusefs/elf_prefetch.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "base/log.h"
#include "fusefs/file_fetch.h"
#include "index/elf_search.h"
#include "index/image_path.h"
#include "index/ld_so_conf.h"

namespace hoist {
namespace {

constexpr uint64_t kMinElfSize = 52;  // an ELF32 header
constexpr uint64_t kMaxConfFileBytes = 1 << 20;

// The view path of an image path ("/usr/lib" -> "usr/lib", "/" -> "").
std::string_view ViewPath(std::string_view image_path) {
  while (!image_path.empty() && image_path.front() == '/') image_path.remove_prefix(1);
  return image_path;
}

}  // namespace

ElfPrefetch::ElfPrefetch(const MergedView* view, ChunkReader* reader, ElfPrefetchOptions options)
    : view_(view), reader_(reader), options_(options) {
  fetches_ = std::make_unique<FetchPool>(std::max(options_.fetch_threads, 1));
  for (int i = 0; i < std::max(options_.examine_threads, 1); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

ElfPrefetch::~ElfPrefetch() {
  {
    MutexLock lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.NotifyAll();
  for (std::thread& t : threads_) t.join();
  fetches_.reset();  // drops the fetches not started, waits for the running ones
}

namespace {

// Worth a look for the ELF magic: executables (any x bit) and shared objects (".so" in the
// name, as the loader's sonames have; Debian installs libraries 0644). Looking costs a fetch of
// the file's first chunk when it is not local, so data files (a .pyc, a locale) are not looked
// at.
bool MayBeElf(const Entry& entry) {
  if ((entry.mode & 0111) != 0) return true;
  const size_t slash = entry.path.rfind('/');
  const std::string_view base =
      std::string_view(entry.path).substr(slash == std::string::npos ? 0 : slash + 1);
  return base.find(".so") != std::string_view::npos;
}

}  // namespace

void ElfPrefetch::OnOpen(const FileRef& file) {
  if (file.entry == nullptr || file.index == nullptr || file.entry->size < kMinElfSize) return;
  if (!MayBeElf(*file.entry)) return;
  {
    MutexLock lock(mu_);
    if (stop_ || queue_.size() >= options_.max_queue) return;
    if (!seen_.insert(file.entry).second) return;
    if (!conf_queued_) {
      // ld.so.conf is parsed by one thread while another looks at this first file.
      conf_queued_ = true;
      queue_.push_back(FileRef{});
    }
    queue_.push_back(file);
  }
  cv_.NotifyOne();
}

ElfPrefetchCounters ElfPrefetch::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

bool ElfPrefetch::MarkSeen(const Entry* entry) {
  MutexLock lock(mu_);
  return seen_.insert(entry).second;
}

void ElfPrefetch::Loop() {
  for (;;) {
    FileRef file;
    {
      MutexLock lock(mu_);
      while (!stop_ && queue_.empty()) cv_.Wait(mu_);
      if (stop_) return;
      file = queue_.front();
      queue_.pop_front();
    }
    if (file.entry == nullptr) {
      (void)ConfDirs();
    } else {
      Examine(file);
    }
  }
}

ImageNode ElfPrefetch::Lstat(const std::string& path) const {
  ImageNode node;
  auto ino = view_->LookupPath(ViewPath(path));
  if (!ino) return node;
  auto st = view_->GetAttr(*ino);
  if (!st) return node;
  if (S_ISREG(st->st_mode)) {
    node.type = ImageNode::Type::kRegular;
  } else if (S_ISDIR(st->st_mode)) {
    node.type = ImageNode::Type::kDirectory;
  } else if (S_ISLNK(st->st_mode)) {
    node.type = ImageNode::Type::kSymlink;
    if (auto target = view_->ReadLink(*ino)) node.target = std::string(*target);
  } else {
    node.type = ImageNode::Type::kOther;
  }
  return node;
}

const std::vector<std::string>& ElfPrefetch::ConfDirs() {
  std::call_once(conf_once_, [this] {
    ReadImageFile read_file = [this](const std::string& path) -> Result<std::string> {
      HOIST_ASSIGN_OR_RETURN(InodeNumber ino, view_->LookupPath(ViewPath(path)));
      HOIST_ASSIGN_OR_RETURN(struct stat st, view_->GetAttr(ino));
      if (S_ISLNK(st.st_mode)) {
        // ld.so.conf (or an included file) as a symlink: resolved inside the image.
        ImageLstat lstat = [this](const std::string& p) { return Lstat(p); };
        HOIST_ASSIGN_OR_RETURN(std::string real, ResolveImagePath(path, lstat));
        HOIST_ASSIGN_OR_RETURN(ino, view_->LookupPath(ViewPath(real)));
      }
      HOIST_ASSIGN_OR_RETURN(FileRef f, view_->OpenFile(ino));
      const uint64_t size = std::min(f.entry->size, kMaxConfFileBytes);
      std::string text(size, '\0');
      // A plain read: its neighbours (the other ld.so.conf.d files) come in the same request.
      HOIST_ASSIGN_OR_RETURN(
          size_t n, reader_->Read(*f.index, *f.entry, 0, std::span<char>(text.data(), size)));
      text.resize(n);
      return text;
    };
    ListImageDir list_dir = [this](const std::string& dir) -> Result<std::vector<std::string>> {
      HOIST_ASSIGN_OR_RETURN(InodeNumber ino, view_->LookupPath(ViewPath(dir)));
      HOIST_ASSIGN_OR_RETURN(DirListing listing, view_->OpenDir(ino));
      std::vector<std::string> names;
      for (uint64_t i = 2; i < listing.size(); ++i) names.emplace_back(listing[i].name);
      return names;
    };
    auto dirs = ParseLdSoConf(read_file, list_dir);
    if (dirs) {
      conf_dirs_ = std::move(*dirs);
    } else {
      HOIST_LOG(kDebug) << "elf prefetch: /etc/ld.so.conf: " << dirs.error().message();
    }
  });
  return conf_dirs_;
}

uint64_t ElfPrefetch::FetchWhole(const FileRef& file, const std::string& path) {
  MissingChunks missing;
  if (!AddMissingChunks(*reader_, file, options_.max_file_bytes, &missing)) return 0;
  const uint64_t bytes = missing.bytes;
  (void)SubmitMissingChunks(reader_, fetches_.get(), std::move(missing), options_.max_request_bytes,
                            "elf prefetch: ", path);
  return bytes;
}

void ElfPrefetch::Examine(const FileRef& file) {
  char magic[4];
  auto n = reader_->ReadQuiet(*file.index, *file.entry, 0, std::span<char>(magic, sizeof(magic)));
  {
    MutexLock lock(mu_);
    ++counters_.examined;
  }
  if (!n || *n != sizeof(magic) ||
      std::memcmp(magic,
                  "\x7f"
                  "ELF",
                  4) != 0)
    return;

  ImageLstat lstat = [this](const std::string& p) { return Lstat(p); };
  auto open_file = [this](const std::string& path) -> Result<FileRef> {
    HOIST_ASSIGN_OR_RETURN(InodeNumber ino, view_->LookupPath(ViewPath(path)));
    return view_->OpenFile(ino);
  };
  OpenImageElf open = [this, &open_file](const std::string& path) -> Result<ElfFile> {
    HOIST_ASSIGN_OR_RETURN(FileRef f, open_file(path));
    ElfFile elf;
    elf.size = f.entry->size;
    elf.read = [this, f](uint64_t offset, uint64_t length) -> Result<std::string> {
      std::string out(length, '\0');
      HOIST_ASSIGN_OR_RETURN(size_t got, reader_->ReadQuiet(*f.index, *f.entry, offset,
                                                            std::span<char>(out.data(), length)));
      out.resize(got);
      return out;
    };
    return elf;
  };
  LibrarySearch search;
  search.lstat = lstat;
  search.conf_dirs = ConfDirs();

  const std::string path = "/" + file.entry->path;
  uint64_t bytes = options_.fetch_opened ? FetchWhole(file, path) : 0;
  size_t libraries = 0;
  auto on_found = [&](const std::string& real_path) {
    auto f = open_file(real_path);
    if (!f || !MarkSeen(f->entry)) return;
    ++libraries;
    bytes += FetchWhole(*f, real_path);
  };
  {
    MutexLock lock(mu_);
    ++counters_.walked;
  }
  auto closure = CollectElfClosure(path, open, search, {}, on_found);
  if (!closure) {
    HOIST_LOG(kDebug) << "elf prefetch: " << path << ": " << closure.error().message();
    return;
  }
  if (libraries > 0 || bytes > 0) {
    HOIST_LOG(kInfo) << "elf prefetch: " << libraries << " libraries for " << path << " (" << bytes
                     << " bytes to fetch)";
  }
}

}  // namespace hoist
