// eStargz reading: footer, annotation, TOC (see FORMATS.md, "eStargz — layout" and
// "eStargz — reading").
//
//   blob = [gzip members: tar headers + payload chunks][gzip member: tar entry
//          "stargz.index.json" + end-of-archive blocks][gzip member: 51-byte footer]
//
// The footer is an empty gzip member whose FEXTRA field carries the TOC offset as 16 hex digits
// followed by "STARGZ" (subfield "SG" in the 51-byte form; a bare 22-byte extra field in the
// legacy 47-byte form). The TOC member is gunzipped (capped while decompressing), the tar entry
// "stargz.index.json" is extracted with TarReader, and its JSON is trusted only if its sha256
// equals the layer annotation containerd.io/snapshot/stargz/toc.digest. Without that annotation
// the TOC is refused (EPERM) unless the caller says it verified the blob some other way
// (EstargzOptions::trust_unverified_toc).
//
// Entries: TOC order; chunks are kGzipMember ranges [offset, next distinct offset or TOC offset)
// with innerOffset; ".prefetch.landmark", ".no.prefetch.landmark" and "stargz.index.json" at the
// root are hidden; regular files before ".prefetch.landmark" get Entry::prefetch.
//
// Errors: EBADMSG for malformed or lying data (footer, gzip, tar, JSON), EIO for a digest
// mismatch or a short read, EFBIG for sizes over a cap, EPERM for an unverifiable TOC, ENOENT
// from ParseEstargzAnnotations when the layer has no toc.digest annotation, errors of the range
// reader unchanged (with context).
//
// Thread-safety: pure functions; LoadEstargzLayer calls `read` from the calling thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"
#include "index/layer_index.h"
#include "index/toc_json.h"
#include "index/zstd_chunked.h"  // BlobRangeReader, kAnnotationStargzTocDigest

namespace hoist {

inline constexpr uint64_t kEstargzFooterSize = 51;
inline constexpr uint64_t kEstargzLegacyFooterSize = 47;
inline constexpr char kEstargzTocName[] = "stargz.index.json";

struct EstargzFooter {
  uint64_t footer_size = kEstargzFooterSize;  // 51, or 47 for the legacy form
  uint64_t toc_offset = 0;                    // start of the gzip member holding the TOC
};

// `tail` is the last min(51, blob_size) bytes of the blob. The footer must be a complete gzip
// member decoding to nothing; the TOC offset must lie before the footer.
[[nodiscard]] Result<EstargzFooter> ParseEstargzFooter(std::string_view tail, uint64_t blob_size);

struct EstargzAnnotations {
  Digest toc_digest;  // containerd.io/snapshot/stargz/toc.digest: sha256 of the TOC JSON
};

// ENOENT if the layer has no toc.digest annotation; EBADMSG if it does not parse.
[[nodiscard]] Result<EstargzAnnotations> ParseEstargzAnnotations(
    const std::map<std::string, std::string>& annotations);

struct EstargzLimits {
  uint64_t max_toc_compressed = 256ull << 20;  // compressed TOC member
  uint64_t max_toc_size = 256ull << 20;        // gunzipped TOC member (tar framing included)
  TocLimits toc;
};

struct EstargzOptions {
  EstargzLimits limits;
  // Without a toc.digest annotation nothing vouches for the TOC, and a lazy mount never hashes
  // the whole blob, so such a layer is refused (EPERM). Set this only when the caller has
  // verified the whole blob against its layer digest (e.g. it holds the blob locally); the
  // layer can otherwise be mounted as a plain tar+gzip stream layer.
  bool trust_unverified_toc = false;
};

// Gunzips one or more concatenated gzip members; the output must be <= cap (EFBIG, enforced
// while decompressing). Trailing garbage or truncation: EBADMSG.
[[nodiscard]] Result<std::string> GunzipCapped(std::string_view compressed, uint64_t cap);

// Gunzips the TOC member, extracts "stargz.index.json" (it must be the first tar entry and a
// regular file), verifies sha256(json) == toc_digest (EIO) unless toc_digest is empty, parses
// and validates. `toc_offset` is where file data ends. Returns the entries (landmarks applied)
// and, in *json_digest if given, the sha256 of the JSON.
[[nodiscard]] Result<std::vector<Entry>> ParseEstargzToc(std::string_view compressed_toc_member,
                                                         const Digest& toc_digest,
                                                         uint64_t toc_offset,
                                                         const EstargzLimits& limits = {},
                                                         Digest* json_digest = nullptr);

struct EstargzLayer {
  LayerIndex index;  // format kEstargz, layer_digest and blob_size set
  EstargzFooter footer;
  Digest toc_json_digest;     // sha256 of the TOC JSON (computed)
  bool toc_verified = false;  // false only with trust_unverified_toc and no annotation
};

// The whole read path: footer (one read of the last 51 bytes), TOC member [toc_offset,
// blob_size - footer_size) (one read), verification, parse.
[[nodiscard]] Result<EstargzLayer> LoadEstargzLayer(const BlobRangeReader& read, uint64_t blob_size,
                                                    const Digest& layer_digest,
                                                    const EstargzAnnotations& annotations,
                                                    const EstargzOptions& options = {});

}  // namespace hoist
