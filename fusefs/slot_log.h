// SlotLog: which layer each slot of a LayerStore (layer_store.h) holds, kept for the lifetime of
// the store's FUSE connection rather than of one process, so a process taking the connection over
// numbers every layer as the kernel already knows it. A FUSE inode number of the store is
// (slot << 32) | i: if a slot meant another layer after a takeover, the kernel's cached dentries
// and the open files of running containers would reach the wrong layer.
//
// The log is an append-only memfd stored in the fd store next to the connection ("layers-slots").
// One record per layer digest: its slot and what adding it again needs without the registry (the
// image reference it came from and that manifest's media type and bytes). A slot, once given, is
// never given to another digest; a digest keeps its slot for the connection's life (added again
// after a removal, it gets the same one: the same layer, the same inode numbers).
//
// Record: "HSL1" | u32 payload length | 8 bytes of the payload's sha256 | payload, little endian
// (payload: u64 slot, 32 raw digest bytes, then u32-length-prefixed reference, media type,
// manifest). Each record is written with one pwrite at the end of the valid records. A record cut
// short by a kill fails its checksum: reading stops there, and the next record overwrites it.
// That record's slot was never used (a layer is published only after its record is written).
//
// Two processes may share the log during an upgrade (the old worker still serves while the new
// one starts): every Assign takes an open-file-description lock on the memfd, reads the records
// the other process appended since, then decides and writes. So both agree on every slot.
//
// Thread-safety: all methods are thread-safe (one internal mutex, plus the OFD lock across
// processes). Errors: Create/Adopt: memfd_create's or read's errno, EINVAL for a log that does
// not start with a valid record; Assign: pwrite's or fcntl's errno (the caller must then not
// publish the layer: the slot is not recorded).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

struct SlotRecord {
  uint64_t slot = 0;
  Digest layer;
  std::string reference;  // the image the layer was first added from
  std::string manifest_media_type;
  std::string manifest;  // raw bytes of that image's manifest
};

// Encodes one record as written (exposed for tests).
std::string EncodeSlotRecord(const SlotRecord& record);

class SlotLog {
 public:
  // A new, empty log in a memfd ("hoist-layer-slots", close-on-exec).
  [[nodiscard]] static Result<std::unique_ptr<SlotLog>> Create();
  // A log handed over with the connection: every valid record is read now.
  [[nodiscard]] static Result<std::unique_ptr<SlotLog>> Adopt(ScopedFd fd);

  int fd() const { return fd_.get(); }

  // The slot of `record.layer`: its recorded one, or a new one (above every slot ever recorded)
  // for which `record` (slot filled in here) is appended first. `*recorded` (may be null) is
  // set to the record now on file for the digest.
  [[nodiscard]] Result<uint64_t> Assign(const SlotRecord& record, SlotRecord* recorded = nullptr);
  // The record of `layer`, if any (after reading what other processes appended).
  std::optional<SlotRecord> Find(const Digest& layer);
  // The highest slot recorded (0 when none).
  uint64_t max_slot();
  size_t record_count();

 private:
  explicit SlotLog(ScopedFd fd) : fd_(std::move(fd)) {}
  // Reads records from end_ on, stopping at the first invalid one.
  Status ReadTail() HOIST_REQUIRES(mu_);

  ScopedFd fd_;
  Mutex mu_;
  uint64_t end_ HOIST_GUARDED_BY(mu_) = 0;  // end of the valid records
  uint64_t max_slot_ HOIST_GUARDED_BY(mu_) = 0;
  std::map<Digest, SlotRecord> by_layer_ HOIST_GUARDED_BY(mu_);
};

}  // namespace hoist
