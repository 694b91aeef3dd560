#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/ from real producers: GNU tar (pax, gnu,
# ustar, v7 archives), umoci + skopeo (an OCI image, its manifest, index and config, and a
# zstd:chunked layer with its footer, TOC and annotations), plus hand-written samples of the
# header formats (WWW-Authenticate, Content-Range, Retry-After, Link, references, auth.json) and
# structured inputs for the targets that decode their own input layout. The result is checked in;
# run this only to refresh it. Needs: tar, umoci, skopeo, zstd, gzip, python3, mdb_load
# (lmdb-utils), gcc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"
seed() {  # seed TARGET NAME < data
  mkdir -p "$out/$1"
  cat >"$out/$1/$2"
}

# --- tar archives (GNU tar): long names, long link targets, symlink, hardlink, dir, fifo, xattr.
src=$tmp/src
mkdir -p "$src/d/sub" "$src/$(printf 'n%.0s' {1..120})"
printf 'hello\n' >"$src/d/f"
head -c 1500 /dev/zero | tr '\0' 'x' >"$src/d/sub/big"
ln -s ../f "$src/d/sub/link"
ln -s "$(printf 'L%.0s' {1..150})" "$src/d/longlink"
ln "$src/d/f" "$src/d/hard"
mkfifo "$src/d/fifo"
touch "$src/$(printf 'n%.0s' {1..120})/$(printf 'm%.0s' {1..60})"
setfattr -n user.k -v v "$src/d/f" 2>/dev/null || true
for fmt in pax gnu ustar v7; do
  tar --format=$fmt --xattrs --mtime=@1700000000.5 --owner=0 --group=0 --numeric-owner \
    --sort=name -b 1 -C "$src" -cf "$tmp/$fmt.tar" . 2>/dev/null || true
  [ -s "$tmp/$fmt.tar" ] && seed fuzz_tar_reader "$fmt.tar" <"$tmp/$fmt.tar"
done
# A GNU base-256 number: a 9 GB sparse-free size can't be stored; use a large uid instead.
tar --format=gnu --owner=99999999:9 --group=0 --mtime=@0 -b 1 -C "$src" -cf "$tmp/b256.tar" d/f
seed fuzz_tar_reader gnu-base256.tar <"$tmp/b256.tar"
printf '30 mtime=1700000000.123456789\n' | seed fuzz_tar_reader pax-record.txt
# PAX sparse members in the three formats (a hole first, data, a hole to the end).
truncate -s 40000 "$tmp/sp" && printf DATA | dd of="$tmp/sp" bs=1 seek=20000 conv=notrunc status=none
for v in 0.0 0.1 1.0; do
  tar --format=pax --sparse --sparse-version=$v --mtime=@1700000000 --owner=0 --group=0 \
    --numeric-owner -b 1 -C "$tmp" -cf "$tmp/sparse-$v.tar" sp
  seed fuzz_tar_reader "pax-sparse-$v.tar" <"$tmp/sparse-$v.tar"
done

# --- an OCI image (umoci) converted to zstd:chunked by skopeo.
cd "$tmp"
umoci init --layout img >/dev/null
umoci new --image img:v1 >/dev/null
umoci unpack --rootless --image img:v1 bundle >/dev/null 2>&1
cp -a "$src/d" bundle/rootfs/ 2>/dev/null || true
rm -f bundle/rootfs/d/fifo
umoci repack --image img:v1 bundle >/dev/null 2>&1
skopeo copy -q --dest-compress-format zstd:chunked --dest-compress oci:img:v1 oci:zc:v1
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }
idx=zc/index.json
man=$(blob zc "$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' $idx)")
seed fuzz_manifest oci-index.json <"$idx"
seed fuzz_manifest oci-manifest-zstd-chunked.json <"$man"
python3 - "$man" "$out" zc <<'EOF'
import json, os, sys, subprocess
man, out, layout = sys.argv[1], sys.argv[2], sys.argv[3]
m = json.load(open(man))
def w(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    open(os.path.join(out, target, name), "wb").write(data)
cfg = open(os.path.join(layout, "blobs/sha256", m["config"]["digest"][7:]), "rb").read()
w("fuzz_manifest", "oci-config.json", cfg)
layer = m["layers"][0]
ann = layer["annotations"]
blob = open(os.path.join(layout, "blobs/sha256", layer["digest"][7:]), "rb").read()
# Annotations in the target's line format (key line, value line).
keys = {"io.github.containers.zstd-chunked.manifest-checksum": "0",
        "io.github.containers.zstd-chunked.manifest-position": "1",
        "io.github.containers.zstd-chunked.tarsplit-position": "2",
        "containerd.io/snapshot/stargz/toc.digest": "3",
        "io.containers.zstd-chunked.manifest-checksum": "4",
        "io.containers.zstd-chunked.manifest-position": "5",
        "io.containers.zstd-chunked.tarsplit-position": "6"}
w("fuzz_zstd_chunked_annotations", "skopeo.txt",
  "".join(f"{keys.get(k, k)}\n{v}\n" for k, v in ann.items()).encode())
# Footer target: the whole (small) blob.
w("fuzz_zstd_chunked_footer", "skopeo-v1.blob", blob)
off, clen, ulen, _ = map(int, ann["io.containers.zstd-chunked.manifest-position"].split(":"))
toc_frame = blob[off:off + clen]
toc_json = subprocess.run(["zstd", "-dc"], input=toc_frame, capture_output=True, check=True).stdout
w("fuzz_zstd_chunked_toc", "skopeo-toc.zst", toc_frame)
w("fuzz_zstd_chunked_toc", "skopeo-toc.json", toc_json)
w("fuzz_toc_json", "skopeo-toc.json", toc_json)
# The same TOC as an eStargz TOC member: gzip(tar("stargz.index.json")), and a 51-byte footer.
import io, tarfile, gzip, struct
t = io.BytesIO()
with tarfile.open(fileobj=t, mode="w", format=tarfile.USTAR_FORMAT) as tf:
    ti = tarfile.TarInfo("stargz.index.json"); ti.size = len(toc_json)
    tf.addfile(ti, io.BytesIO(toc_json))
member = gzip.compress(t.getvalue(), mtime=0)
w("fuzz_estargz", "toc-member.gz", member)
def footer(toc_offset):
    extra = b"SG" + struct.pack("<H", 22) + b"%016xSTARGZ" % toc_offset
    return (b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra +
            b"\x01\x00\x00\xff\xff" + b"\x00" * 8)
w("fuzz_estargz", "footer51.bin", b"\x00" * 100 + footer(40))
legacy = (b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", 22) + b"%016xSTARGZ" % 30 +
          b"\x01\x00\x00\xff\xff" + b"\x00" * 8)
w("fuzz_estargz", "footer47.bin", b"\x00" * 100 + legacy)
# A v2 (72-byte) zstd:chunked footer after a fake TOC and tar-split, as hoist's writer writes it.
body = b"\x00" * 300
v2 = struct.pack("<II7Q", 0x184D2A50, 64, 100, 50, 400, 1, 150, 40, 900) + b"GnUlInUx"
w("fuzz_zstd_chunked_footer", "v2.blob", body + v2)
EOF

# --- chunk_codec: [encoding][size mode][u16 size][inner mode][u16 inner][digest mode] + blob.
python3 - "$out" <<'EOF'
import os, sys, struct, subprocess, gzip
out = sys.argv[1]
os.makedirs(f"{out}/fuzz_chunk_codec", exist_ok=True)
data = b"hoist chunk " * 40
z = subprocess.run(["zstd", "-c", "-q"], input=data, capture_output=True, check=True).stdout
g = gzip.compress(data, mtime=0)
def seed(name, enc, size, inner, dmode, blob):
    open(f"{out}/fuzz_chunk_codec/{name}", "wb").write(
        bytes([enc, 0]) + struct.pack("<H", size) + bytes([0]) + struct.pack("<H", inner) +
        bytes([dmode]) + blob)
seed("zstd-frame", 0, len(data), 0, 0, z)
seed("zstd-prefix", 5, 100, 12, 0, z + z)
seed("gzip-member", 1, 200, 24, 0, g + g)
seed("raw", 3, 16, 0, 1, b"0123456789abcdef")
seed("zeros", 2, 4096, 0, 2, b"")
EOF

# --- layer_index_codec: record bodies (the target appends the XXH3 trailer itself).
python3 - "$out" <<'EOF'
import os, sys, hashlib
out = sys.argv[1]
def v(n):
    b = bytearray()
    while True:
        c = n & 0x7f; n >>= 7
        if n: b.append(c | 0x80)
        else: b.append(c); return bytes(b)
def s(x): return v(len(x)) + x
def digest(d): return b"\x01" + hashlib.sha256(d).digest()
def entry(path, typ, size=0, link=b"", chunks=(), xattrs=()):
    e = s(path) + bytes([typ]) + v(0o644) + v(1000) + v(1000) + v(2 * 1700000000) + v(5) + v(size)
    e += s(link) + v(0) + v(0) + v(len(xattrs)) + b"".join(s(k) + s(val) for k, val in xattrs)
    e += digest(path) if typ == 0 else b"\x00"
    e += b"\x00" + v(len(chunks))
    for (fo, sz, bo, bl, io_, enc) in chunks:
        e += v(fo) + v(sz) + v(bo) + v(bl) + v(io_) + bytes([enc]) + digest(b"%d" % fo)
    return e
entries = [entry(b"", 1), entry(b"etc", 1), entry(b"etc/hosts", 0, 6, chunks=[(0, 6, 0, 20, 0, 0)]),
           entry(b"etc/big", 0, 8192, chunks=[(0, 4096, 20, 30, 0, 0), (4096, 4096, 50, 9, 0, 2)]),
           entry(b"bin/sh", 2, link=b"busybox", xattrs=[(b"user.a", b"1")]),
           entry(b"bin/ln", 3, link=b"etc/hosts")]
body = bytes([1]) + hashlib.sha256(b"layer").digest() + v(12345) + bytes([0]) + v(len(entries))
body += b"".join(entries)
os.makedirs(f"{out}/fuzz_layer_index_codec", exist_ok=True)
open(f"{out}/fuzz_layer_index_codec/index-body.bin", "wb").write(body)
open(f"{out}/fuzz_layer_index_codec/empty-body.bin", "wb").write(
    bytes([1]) + hashlib.sha256(b"x").digest() + v(0) + bytes([2]) + v(0))
EOF

# --- gzip_index: checkpoint indexes (index/FORMATS.md, "Checkpoint index"): a zstd one of
# frame starts, a gzip one with a member start and a deflate-block checkpoint whose window is a
# real zstd frame of 32 KiB (made by the zstd CLI from a file, so it declares its size).
head -c 32768 /dev/urandom | base64 -w0 | head -c 32768 >"$tmp/window"
zstd -q -3 -c "$tmp/window" >"$tmp/window.zst"
python3 - "$out" "$tmp/window.zst" <<'EOF'
import os, struct, sys, hashlib
out, window = sys.argv[1], open(sys.argv[2], "rb").read()
def index(codec, blob_size, stream_size, cps):
    b = b"HOISTZRN" + struct.pack("<HBBIQQQ", 1, codec, 0, len(cps), blob_size, stream_size, 1 << 20)
    b += hashlib.sha256(b"blob").digest()
    for (inn, outo, kind, bits, win) in cps:
        b += struct.pack("<QQBBHI", inn, outo, kind, bits, 0, len(win)) + win
    return b
os.makedirs(f"{out}/fuzz_gzip_index", exist_ok=True)
open(f"{out}/fuzz_gzip_index/zstd-frames.bin", "wb").write(
    index(2, 3000, 90000, [(0, 0, 0, 0, b""), (1000, 30000, 0, 0, b""), (2000, 60000, 0, 0, b"")]))
open(f"{out}/fuzz_gzip_index/gzip-window.bin", "wb").write(
    index(1, 5000, 200000, [(0, 0, 0, 0, b""), (1500, 40000, 1, 3, window), (4000, 150000, 0, 0, b"")]))
# Version 2: the same with its window external (in a windows blob of its own).
ext = b"HOISTZRN" + struct.pack("<HBBIQQQ", 2, 1, 0, 3, 5000, 200000, 1 << 20)
ext += hashlib.sha256(b"blob").digest() + struct.pack("<Q", len(window)) + hashlib.sha256(window).digest()
ext += struct.pack("<QQBBHI", 0, 0, 0, 0, 0, 0)
ext += struct.pack("<QQBBHI", 1500, 40000, 1, 3, 0, len(window)) + struct.pack("<Q", 0) + hashlib.sha256(window).digest()
ext += struct.pack("<QQBBHI", 4000, 150000, 0, 0, 0, 0)
open(f"{out}/fuzz_gzip_index/gzip-external-window.bin", "wb").write(ext)
EOF

# --- merged_view: byte strings the target turns into layers (see fuzz_merged_view.cc).
python3 - "$out" <<'EOF'
import os, sys, random
out = sys.argv[1]
os.makedirs(f"{out}/fuzz_merged_view", exist_ok=True)
rng = random.Random(7)
for i in range(8):
    open(f"{out}/fuzz_merged_view/random-{i}", "wb").write(bytes(rng.randrange(256) for _ in range(64 + 48 * i)))
EOF

# --- tar-split JSON lines (type 2 segments, type 1 files with CRC-64/ISO), from the pax tar.
python3 - "$out" "$tmp/ustar.tar" <<'EOF'
import os, sys, json, base64, tarfile, struct
out, tar = sys.argv[1], sys.argv[2]
table = []
for i in range(256):
    c = i
    for _ in range(8): c = (c >> 1) ^ 0xD800000000000000 if c & 1 else c >> 1
    table.append(c)
def crc64(data):
    c = 0xFFFFFFFFFFFFFFFF
    for b in data: c = table[(c ^ b) & 0xff] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF
raw = open(tar, "rb").read()
lines, pos, cur = [], 0, 0
with tarfile.open(tar) as tf:
    for m in tf.getmembers():
        hdr_end = m.offset_data
        lines.append({"type": 2, "payload": base64.b64encode(raw[cur:hdr_end]).decode(), "position": pos}); pos += 1
        content = raw[m.offset_data:m.offset_data + m.size] if m.isreg() else b""
        rec = {"type": 1, "name": m.name, "size": len(content), "position": pos}
        if content: rec["payload"] = base64.b64encode(struct.pack(">Q", crc64(content))).decode()
        lines.append(rec); pos += 1
        cur = m.offset_data + len(content)
lines.append({"type": 2, "payload": base64.b64encode(raw[cur:]).decode(), "position": pos})
os.makedirs(f"{out}/fuzz_tar_split", exist_ok=True)
open(f"{out}/fuzz_tar_split/ustar.jsonl", "w").write("".join(json.dumps(l) + "\n" for l in lines))
EOF

# --- header and reference samples.
i=0
while IFS= read -r line; do i=$((i + 1)); printf '%s' "$line" | seed fuzz_www_authenticate "s$i"; done <<'EOF'
Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"
Basic realm="Registry Realm"
Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push",error="insufficient_scope"
Bearer realm="http://127.0.0.1:5001/token", service="local", scope="repository:x:pull" , Basic realm="r"
Negotiate abc123==, Bearer realm="a\"b\\c"
Bearer error="invalid_token", error_description="The access token expired"
EOF
i=0
while IFS= read -r line; do i=$((i + 1)); printf '%s' "$line" | seed fuzz_reference "r$i"; done <<'EOF'
ubuntu
ubuntu:22.04
library/busybox@sha256:4b8ff392a12ed9ea17784bd3c9a8b1fa3299cac44aca35a85c90c5e3c7afacdc
ghcr.io/org/repo/sub:v1.2.3
localhost:5000/x/y:latest@sha256:4b8ff392a12ed9ea17784bd3c9a8b1fa3299cac44aca35a85c90c5e3c7afacdc
[::1]:5000/a__b/c-d.e:T_1
index.docker.io/library/alpine
Registry.Example.COM/Foo
EOF
i=0
# containerd filters (hoist-snapshotter List requests): what its GC, metadata layer and ctr send.
while IFS= read -r line; do i=$((i + 1)); printf '%s' "$line" | seed fuzz_snapshot_filter "f$i"; done <<'EOF'
labels."containerd.io/snapshot.ref"==sha256:4b8ff392a12ed9ea17784bd3c9a8b1fa3299cac44aca35a85c90c5e3c7afacdc,parent=="default/2/sha256:ab"
kind==committed
labels."containerd.io/gc.root"
name~=^default/,kind!=view
name~=/a\/b|c/
parent=="esc\"aped\x41\u00e9\101"
name == spaced , kind==active
EOF
i=0
while IFS= read -r line; do i=$((i + 1)); printf '%s' "$line" | seed fuzz_http_headers "h$i"; done <<'EOF'
bytes 0-499/1234
bytes 100-100/*
bytes */1234
120
Wed, 21 Oct 2015 07:28:00 GMT
Sunday, 06-Nov-94 08:49:37 GMT
Sun Nov  6 08:49:37 1994
</v2/_catalog?last=b&n=2>; rel="next"
<https://r.example/v2/x/tags/list?n=1&last=a>; rel="prev next", <https://x>; rel=first
https://registry.example:5000/v2/x/blobs/sha256:ab?sig=1
EOF
printf 'https://r.example/v2/a/b/blobs/x\n../../c?d=e#f' | seed fuzz_http_headers url-rel
printf 'http://[::1]:5000/v2/\n//cdn.example/path' | seed fuzz_http_headers url-netpath
printf 'https://r.example/v2/_catalog\n</v2/_catalog?last=b>; rel="next"' | seed fuzz_http_headers link-base
printf '%s' '{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"localhost:5000":{"auth":"YTpi"}}}' | seed fuzz_credentials docker.json
printf '%s' '{"auths":{"ghcr.io":{"identitytoken":"tok"},"http://localhost:5000/v2/":{"registrytoken":"r"}}}' | seed fuzz_credentials tokens.json
printf '%s' '{"auths":{"ghcr.io":{"username":"u","password":"p"}},"credsStore":"x"}' | seed fuzz_credentials userpass.json

# --- manifests: a Docker v2 manifest and list, an OCI index with platforms.
seed fuzz_manifest docker-manifest.json <<'EOF'
{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:c59d8d1b1e3fbbd0e7ad6d3c9ab3a3b7e9d2b61dbfd8b8ffb2d0a0b8c5a1e2f3"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3370706,"digest":"sha256:9b3977197b4f2147bdd31e1271f811319dcd5c2fc595f14e81f5351ab6275b99"}]}
EOF
seed fuzz_manifest docker-list.json <<'EOF'
{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":"sha256:9b3977197b4f2147bdd31e1271f811319dcd5c2fc595f14e81f5351ab6275b99","platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":"sha256:c59d8d1b1e3fbbd0e7ad6d3c9ab3a3b7e9d2b61dbfd8b8ffb2d0a0b8c5a1e2f3","platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":566,"digest":"sha256:0b3977197b4f2147bdd31e1271f811319dcd5c2fc595f14e81f5351ab6275b99","platform":{"architecture":"unknown","os":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}
EOF
# --- LMDB data files (liblmdb's mdb_load): a fresh one and one with a named table of records.
mkdir -p "$tmp/lmdb1" "$tmp/lmdb2"
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n a\n b\nDATA=END\n' | mdb_load "$tmp/lmdb1"
seed fuzz_lmdb_header small.mdb <"$tmp/lmdb1/data.mdb"
python3 -c 'import sys
sys.stdout.write("VERSION=3\nformat=print\ntype=btree\nHEADER=END\n")
for i in range(300): sys.stdout.write(" key%04d\n value%04d%s\n" % (i, i, "x" * 40))
sys.stdout.write("DATA=END\n")' | mdb_load -s chunks "$tmp/lmdb2"
seed fuzz_lmdb_header table.mdb <"$tmp/lmdb2/data.mdb"

# --- hoist-cri configs: first byte 0 = pod, 1 = container.
printf '\0{"metadata": {"name": "p", "uid": "u", "namespace": "n"}, "log_directory": "/l", "linux": {"security_context": {"namespace_options": {"network": "NODE", "pid": 1}, "run_as_user": 0}}, "labels": {"a": "b"}}' | seed fuzz_cri_spec pod
printf '\1{"metadata": {"name": "c"}, "image": {"image": "r/i:v1"}, "command": ["/bin/cat"], "args": ["x"], "envs": [{"key": "K", "value": "V"}], "log_path": "c.log", "linux": {"security_context": {"privileged": true}}}' | seed fuzz_cri_spec ctr

# --- ELF files (fuzz_elf_deps): a small PIE program and a shared library built by gcc (interp,
# DT_NEEDED, DT_SONAME, DT_RUNPATH), hand-built ELF32/ELF64 files in both byte orders, and an
# ld.so.conf (the target also reads its input as one).
printf 'int main(void) { return 0; }\n' >"$tmp/m.c"
printf 'int f(void) { return 1; }\n' >"$tmp/l.c"
gcc -s -Wl,-z,noseparate-code -o "$tmp/prog" "$tmp/m.c"
gcc -shared -nostdlib -fPIC -s -Wl,-z,noseparate-code -Wl,--no-as-needed \
  -Wl,-soname,libseed.so.1 -Wl,--enable-new-dtags,-rpath,'$ORIGIN/../lib' \
  -o "$tmp/libseed.so" "$tmp/l.c" -lc
seed fuzz_elf_deps gcc-pie <"$tmp/prog"
seed fuzz_elf_deps gcc-shared <"$tmp/libseed.so"
python3 - "$out" <<'EOF'
import os, struct, sys
out = sys.argv[1]
os.makedirs(f"{out}/fuzz_elf_deps", exist_ok=True)
def elf(cls64, big, etype, machine, interp, needed, rpath=b"", runpath=b""):
    e, w = (">" if big else "<"), ("Q" if cls64 else "I")
    ehsize, phentsize = (64, 56) if cls64 else (52, 32)
    base = 0x400000 if etype == 2 else 0
    phnum = 3 if interp else 2
    interp_off = ehsize + phnum * phentsize
    body = bytearray(interp + b"\0" if interp else b"")
    strtab_off = interp_off + len(body)
    strtab, dyn = bytearray(b"\0"), []
    for tag, s in [(1, n) for n in needed] + [(15, rpath), (29, runpath)]:
        if s:
            dyn.append((tag, len(strtab)))
            strtab += s + b"\0"
    dyn += [(5, base + strtab_off), (10, len(strtab)), (0, 0)]  # DT_STRTAB, DT_STRSZ, DT_NULL
    body += strtab
    while (interp_off + len(body)) % 8:
        body += b"\0"
    dyn_off = interp_off + len(body)
    for tag, val in dyn:
        body += struct.pack(e + w + w, tag, val)
    total = interp_off + len(body)
    ident = b"\x7fELF" + bytes([2 if cls64 else 1, 2 if big else 1, 1]) + b"\0" * 9
    if cls64:
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", etype, machine, 1, 0, ehsize, 0, 0,
                                  ehsize, phentsize, phnum, 0, 0, 0)
        ph = lambda t, off, sz: struct.pack(e + "IIQQQQQQ", t, 4, off, base + off, base + off,
                                            sz, sz, 8)
    else:
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", etype, machine, 1, 0, ehsize, 0, 0,
                                  ehsize, phentsize, phnum, 0, 0, 0)
        ph = lambda t, off, sz: struct.pack(e + "IIIIIIII", t, off, base + off, base + off,
                                            sz, sz, 4, 8)
    phdrs = ph(1, 0, total)  # PT_LOAD over the whole file
    if interp:
        phdrs += ph(3, interp_off, len(interp) + 1)  # PT_INTERP
    phdrs += ph(2, dyn_off, total - dyn_off)  # PT_DYNAMIC
    return hdr + phdrs + bytes(body)
def w(name, data):
    open(f"{out}/fuzz_elf_deps/{name}", "wb").write(data)
w("elf32-be-exec", elf(False, True, 2, 20, b"/lib/ld.so.1", [b"libc.so.6", b"libm.so.6"],
                       rpath=b"/opt/a:$ORIGIN/../lib"))
w("elf64-le-dyn", elf(True, False, 3, 62, b"/lib64/ld-linux-x86-64.so.2",
                      [b"libz.so.1", b"libc.so.6"], runpath=b"${ORIGIN}/x:$LIB"))
w("elf64-be-lib", elf(True, True, 3, 21, b"", [b"libc.so.6"]))
w("elf32-le-lib", elf(False, False, 3, 3, b"", [b"/abs/lib.so", b"../rel.so"], rpath=b"$PLATFORM"))
w("ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n# c\n/usr/local/lib\n/opt/../lib/=x\n"
                b"hwcap 0 x\ninclude a.conf\n")
EOF


# --- access traces (fuzz_access_trace): hoistfs -o trace= output, with escapes; an empty one.
printf '%s' '{"schemaVersion":1,"image":"sha256:9b3977197b4f2147bdd31e1271f811319dcd5c2fc595f14e81f5351ab6275b99","files":[{"layer":"sha256:c59d8d1b1e3fbbd0e7ad6d3c9ab3a3b7e9d2b61dbfd8b8ffb2d0a0b8c5a1e2f3","path":"bin/busybox"},{"layer":"sha256:c59d8d1b1e3fbbd0e7ad6d3c9ab3a3b7e9d2b61dbfd8b8ffb2d0a0b8c5a1e2f3","path":"etc/a \"q\"\\\u00e9"}]}' | seed fuzz_access_trace trace.json
printf '%s' '{"schemaVersion":1,"image":"sha256:9b3977197b4f2147bdd31e1271f811319dcd5c2fc595f14e81f5351ab6275b99","files":[]}' | seed fuzz_access_trace empty.json
echo "corpus: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1)"
