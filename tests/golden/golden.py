#!/usr/bin/env python3
"""The golden files' source layers and their expected trees (tests/golden/README.md).

  golden.py layers DIR        writes DIR/layer1.tar and DIR/layer2.tar (deterministic: the same
                              bytes on every run) and DIR/layout, an OCI layout (tag "t") whose
                              image has the two layers, uncompressed
  golden.py tree [--hide-stargz] TAR...
                              prints the expected tree of each uncompressed layer tar, in tar
                              order, one line per entry (format below); --hide-stargz leaves out
                              the root entries ctr-remote adds (stargz.index.json and the
                              prefetch landmarks), which hoist hides by design (index/estargz.h)

  golden.py merged ROOTFS      prints the tree of an unpacked image (umoci unpack's rootfs),
                              sorted by path, one line per file (format below)

This file is the independent side of the golden test: it reads tars with Python's tarfile and
nothing of hoist. A tree line is space-separated:

  LAYER PATH TYPE MODE UID GID SIZE SHA256 LINK MTIME XATTRS

LAYER counts from 1; PATH is cleaned (no "./", no trailing "/"); TYPE is file, dir, symlink,
hardlink, char, block or fifo; MODE is the permission bits in octal (4 digits, setuid included);
SIZE and SHA256 are the content's (0 and "-" for everything but files); LINK is the symlink
target or the hardlink's target path ("-" if none); MTIME is seconds; XATTRS is "-" or the
entry's xattrs sorted by name as NAME=HEXVALUE joined by ",". Paths and link targets hold no
spaces (the source layers are built so). A merged line is

  PATH TYPE MODE UID GID SIZE SHA256 LINK MTIME NLINK XATTRS

with the root as ".", SIZE the content's for files, the target's length for symlinks and 0 for
directories, and NLINK the link count (2 + subdirectories for a directory).
"""

import hashlib
import io
import json
import os
import stat
import sys
import tarfile

MTIME = 1700000000

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu layer chunk "
    "frame digest index mount registry blob footer manifest tar gzip zstd golden file tree "
    "merge whiteout opaque symlink hardlink xattr setuid owner group mode inode cache fetch "
    "range verify"
).split()


def stream(seed, n):
    """n deterministic pseudo-random bytes (sha256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def word_salad(seed, n):
    """n bytes of text from a small vocabulary: compresses well, and content-defined chunkers
    still find boundaries in it (unlike a run of one byte)."""
    out = []
    size = 0
    raw = stream(seed, n)  # one byte picks a word; never runs out before n bytes of text
    i = 0
    while size < n:
        w = WORDS[raw[i] % len(WORDS)]
        i += 1
        sep = "\n" if raw[i - 1] % 11 == 0 else " "
        out.append(w + sep)
        size += len(w) + 1
    return "".join(out).encode()[:n]


def member(name, kind, mode, uid=0, gid=0, data=b"", link="", xattrs=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = uid
    info.gid = gid
    info.uname = ""
    info.gname = ""
    info.mtime = MTIME
    info.linkname = link
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + k: v for k, v in sorted(xattrs.items())}
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def layer1():
    return [
        member("bin/", tarfile.DIRTYPE, 0o755),
        member("bin/tool", tarfile.REGTYPE, 0o4755, data=b"#!/bin/sh\necho golden tool\n"),
        member("data/", tarfile.DIRTYPE, 0o755),
        # Several chunks for every producer (ctr-remote cuts at --estargz-chunk-size; skopeo's
        # rolling checksum finds its own boundaries).
        member("data/big.txt", tarfile.REGTYPE, 0o644, data=word_salad("big", 180000)),
        member("data/one", tarfile.REGTYPE, 0o644, data=b"1"),
        member("data/block-511", tarfile.REGTYPE, 0o644, data=stream("511", 511)),
        member("data/block-512", tarfile.REGTYPE, 0o644, data=stream("512", 512)),
        member("data/block-4097", tarfile.REGTYPE, 0o640, 0, 0, stream("4097", 4097)),
        # Incompressible: stored as it is by deflate and zstd (the test flips a byte of it).
        member("data/random.bin", tarfile.REGTYPE, 0o644, data=stream("random", 3000)),
        member("etc/", tarfile.DIRTYPE, 0o755),
        member("etc/empty", tarfile.REGTYPE, 0o644),
        member("etc/hello", tarfile.REGTYPE, 0o644, data=b"hello golden\n"),
        member("etc/hello.hard", tarfile.LNKTYPE, 0o644, link="etc/hello"),
        member("etc/link", tarfile.SYMTYPE, 0o777, link="hello"),
        member("etc/abs-link", tarfile.SYMTYPE, 0o777, link="/etc/hello"),
        member("private/", tarfile.DIRTYPE, 0o700, 1000, 1001),
        member(
            "private/notes.txt",
            tarfile.REGTYPE,
            0o600,
            1000,
            1001,
            b"private notes\n",
            xattrs={"user.comment": "golden file", "user.mime_type": "text/plain; charset=utf-8"},
        ),
        member("private/keep", tarfile.REGTYPE, 0o600, 1000, 1001, b"kept until layer 2\n"),
        member("tmp/", tarfile.DIRTYPE, 0o1777),
    ]


def layer2():
    return [
        member("etc/", tarfile.DIRTYPE, 0o755),
        member("etc/.wh.hello", tarfile.REGTYPE, 0o644),  # whiteout: etc/hello is gone
        member("etc/hello2", tarfile.REGTYPE, 0o644, data=b"hello again\n"),
        member("private/", tarfile.DIRTYPE, 0o700, 1000, 1001),
        member("private/.wh..wh..opq", tarfile.REGTYPE, 0o644),  # opaque: layer 1's entries go
        member(
            "private/new.txt",
            tarfile.REGTYPE,
            0o600,
            1000,
            1001,
            b"new in layer 2\n",
            xattrs={"user.layer": "2"},
        ),
    ]


def write_tar(path, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return buf.getvalue()


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def cmd_layers(out):
    os.makedirs(out, exist_ok=True)
    tars = [write_tar(os.path.join(out, f"layer{i + 1}.tar"), m()) for i, m in enumerate((layer1, layer2))]
    layout = os.path.join(out, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    layers = []
    for t in tars:
        d = put_blob(layout, t)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **d})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/golden/golden.py"}] * 2,
    }
    cfg = put_blob(layout, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": layers,
    }
    man = put_blob(layout, canonical(manifest))
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **man,
                "annotations": {"org.opencontainers.image.ref.name": "t"},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical(index))


TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}

STARGZ_ENTRIES = {"stargz.index.json", ".prefetch.landmark", ".no.prefetch.landmark"}


def clean(name):
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def tree_lines(layer, path, hide_stargz):
    lines = []
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            name = clean(info.name)
            if name == "" or (hide_stargz and name in STARGZ_ENTRIES):
                continue
            kind = TYPES[info.type]
            size, sha = 0, "-"
            if kind == "file":
                data = tar.extractfile(info).read()
                size, sha = len(data), "sha256:" + hashlib.sha256(data).hexdigest()
            link = "-"
            if kind == "symlink":
                link = info.linkname
            elif kind == "hardlink":
                link = clean(info.linkname)
            xattrs = sorted(
                (k[len("SCHILY.xattr.") :], v.encode("utf-8", "surrogateescape").hex())
                for k, v in info.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            )
            xa = ",".join(f"{k}={v}" for k, v in xattrs) or "-"
            for field in (name, link):
                if " " in field:
                    sys.exit(f"golden.py: {path}: a space in {field!r}")
            lines.append(
                f"{layer} {name} {kind} {info.mode & 0o7777:04o} {info.uid} {info.gid} "
                f"{size} {sha} {link} {int(info.mtime)} {xa}"
            )
    return lines


def merged_lines(rootfs):
    """The unpacked image under ROOTFS (umoci unpack's rootfs), sorted by path."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        names = [os.path.join(dirpath, n) for n in dirnames + filenames]
        if dirpath == rootfs:
            names.append(rootfs)
        for full in names:
            st = os.lstat(full)
            rel = os.path.relpath(full, rootfs)
            kind = {
                stat.S_IFREG: "file",
                stat.S_IFDIR: "dir",
                stat.S_IFLNK: "symlink",
                stat.S_IFCHR: "char",
                stat.S_IFBLK: "block",
                stat.S_IFIFO: "fifo",
            }[stat.S_IFMT(st.st_mode)]
            size, sha, link = 0, "-", "-"
            if kind == "file":
                with open(full, "rb") as f:
                    data = f.read()
                size, sha = len(data), "sha256:" + hashlib.sha256(data).hexdigest()
            elif kind == "symlink":
                link = os.readlink(full)
                size = len(os.fsencode(link))
            xattrs = sorted(
                (n, os.getxattr(full, n, follow_symlinks=False).hex())
                for n in os.listxattr(full, follow_symlinks=False)
            )
            xa = ",".join(f"{k}={v}" for k, v in xattrs) or "-"
            lines.append(
                (
                    rel,
                    f"{rel} {kind} {stat.S_IMODE(st.st_mode):04o} {st.st_uid} {st.st_gid} {size} "
                    f"{sha} {link} {int(st.st_mtime)} {st.st_nlink} {xa}",
                )
            )
    return [line for _, line in sorted(lines)]


def main(argv):
    if len(argv) == 3 and argv[1] == "layers":
        cmd_layers(argv[2])
        return 0
    if len(argv) >= 3 and argv[1] == "tree":
        args = argv[2:]
        hide = False
        if args and args[0] == "--hide-stargz":
            hide, args = True, args[1:]
        for i, path in enumerate(args):
            for line in tree_lines(i + 1, path, hide):
                print(line)
        return 0
    if len(argv) == 3 and argv[1] == "merged":
        for line in merged_lines(argv[2]):
            print(line)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
