#!/usr/bin/env bash
# make.sh: regenerates the golden files under tests/golden/ (README.md there). Run by hand, as
# root (containerd), never in CI; then review `git diff --stat tests/golden` and commit.
#
#   tests/golden/make.sh
#
# 1. golden.py builds two deterministic uncompressed layers (the same bytes on every run) and an
#    OCI layout of them; `umoci unpack` of that image gives merged.txt, the tree every
#    producer's image must merge to.
# 2. Each producer converts the source image and pushes it to a real registry
#    (tests/harness/registry.sh):
#      skopeo-zstd-chunked      skopeo copy --dest-compress-format zstd:chunked
#      ctr-remote-estargz       ctr-remote image convert --oci --estargz (private containerd)
#      ctr-remote-zstd-chunked  ctr-remote image convert --oci --zstdchunked
# 3. From the registry, each conversion's manifest, config and layer blobs are copied to
#    tests/golden/<producer>/ (manifest.json, blobs/<hex digest>), and tree.txt is written by
#    golden.py from the layer blobs decompressed with zstd(1) / gzip(1): never by hoist. Each
#    tree.txt must equal the tree of the source tars (else this script stops and shows the diff:
#    the producer changed the content).
# 4. The producer versions are written into README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { echo "make.sh: $*" >&2; exit 1; }

for tool in skopeo ctr ctr-remote containerd docker-registry umoci curl jq python3 zstd gzip sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/setup.sh)"
done
[[ $(id -u) == 0 ]] || die "run as root (containerd needs it)"

work=$(mktemp -d /tmp/hg-XXXXXX)  # short: containerd's socket path must fit
cd_pid=""
cleanup() {
  [[ -n $cd_pid ]] && kill -TERM "$cd_pid" 2>/dev/null && wait "$cd_pid" 2>/dev/null
  "$repo/tests/harness/registry.sh" stop "$work/reg" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "make.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR

# 1. The source layers.
python3 "$here/golden.py" layers "$work/src"
python3 "$here/golden.py" tree "$work/src/layer1.tar" "$work/src/layer2.tar" >"$work/src/tree.txt"
# The merged image as umoci extracts it (whiteouts and the opaque marker applied).
umoci unpack --image "$work/src/layout:t" "$work/bundle" >/dev/null
python3 "$here/golden.py" merged "$work/bundle/rootfs" >"$here/merged.txt"

# 2. The registry and the conversions.
addr=$("$repo/tests/harness/registry.sh" start "$work/reg")
# Straight from the layout to a registry that has never seen these layers: skopeo 1.9.3 reuses
# a blob it knows (its blob-info cache) instead of converting it.
skopeo copy -q --dest-tls-verify=false --dest-compress --dest-compress-format zstd:chunked \
  "oci:$work/src/layout:t" "docker://$addr/golden/skopeo-zstd-chunked:t"

mkdir -p "$work/cd"
sock=$work/cd/state/containerd.sock
cat >"$work/cd/config.toml" <<EOF
version = 2
root = "$work/cd/root"
state = "$work/cd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF
containerd --config "$work/cd/config.toml" >"$work/cd/containerd.log" 2>&1 &
cd_pid=$!
for _ in $(seq 1 600); do
  ctr -a "$sock" version >/dev/null 2>&1 && break
  kill -0 "$cd_pid" 2>/dev/null || die "containerd exited at start: $(tail -5 "$work/cd/containerd.log")"
  sleep 0.05
done
ctr -a "$sock" version >/dev/null || die "containerd did not answer (see $work/cd/containerd.log)"
tar -C "$work/src/layout" -cf "$work/src/layout.tar" .
ctr -a "$sock" images import --no-unpack --all-platforms --base-name "$addr/golden/src" \
  "$work/src/layout.tar" >/dev/null
convert() {  # NAME FLAGS...
  local name=$1
  shift
  ctr-remote -a "$sock" image convert --oci --all-platforms "$@" "$addr/golden/src:t" \
    "$addr/golden/$name:t" >/dev/null
  ctr -a "$sock" images push --plain-http "$addr/golden/$name:t" >/dev/null
}
# 16 KiB chunks: data/big.txt spans several while every blob stays small.
convert ctr-remote-estargz --estargz --estargz-chunk-size 16384
convert ctr-remote-zstd-chunked --zstdchunked --estargz-chunk-size 16384

# 3. Copy each conversion out of the registry and write its tree.
accept="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
fetch_blob() {  # REPO DIGEST OUT
  curl -sSf -o "$3" "http://$addr/v2/$1/blobs/$2"
  [[ "sha256:$(sha256sum "$3" | cut -d' ' -f1)" == "$2" ]] || die "$1: blob $2 does not match its digest"
}
for producer in skopeo-zstd-chunked ctr-remote-estargz ctr-remote-zstd-chunked; do
  out=$here/$producer
  rm -rf "$out"
  mkdir -p "$out/blobs"
  curl -sSf -H "Accept: $accept" -o "$out/manifest.json" "http://$addr/v2/golden/$producer/manifests/t"
  config=$(jq -r .config.digest "$out/manifest.json")
  fetch_blob "golden/$producer" "$config" "$out/blobs/${config#sha256:}"
  tars=()
  hide=()
  i=0
  for layer in $(jq -r '.layers[].digest' "$out/manifest.json"); do
    i=$((i + 1))
    blob=$out/blobs/${layer#sha256:}
    fetch_blob "golden/$producer" "$layer" "$blob"
    media_type=$(jq -r ".layers[$((i - 1))].mediaType" "$out/manifest.json")
    [[ $producer == *zstd-chunked && $media_type != *zstd ]] &&
      die "$producer: layer $i is $media_type, not zstd (the producer reused a blob it knew?)"
    case $media_type in
      *zstd) zstd -q -d -c "$blob" >"$work/$producer-$i.tar" ;;
      *gzip) gzip -d -c "$blob" >"$work/$producer-$i.tar" ;;
      *) die "$producer: layer $i has media type $media_type" ;;
    esac
    tars+=("$work/$producer-$i.tar")
  done
  [[ $producer == ctr-remote-* ]] && hide=(--hide-stargz)
  python3 "$here/golden.py" tree "${hide[@]}" "${tars[@]}" >"$out/tree.txt"
  diff -u "$work/src/tree.txt" "$out/tree.txt" ||
    die "$producer: the layers' tree differs from the source layers' (above)"
done

# 4. Producer versions.
sk_version=$(skopeo --version)
cr_version=$(dpkg-query -W -f '${Package} ${Version}' stargz-snapshotter 2>/dev/null || echo "stargz-snapshotter (version unknown)")
cd_version=$(containerd --version)
python3 - "$here/README.md" "$sk_version" "$cr_version" "$cd_version" <<'EOF'
import re, sys
path, sk, cr, cd = sys.argv[1:]
text = open(path).read()
block = (
    "<!-- producers: written by make.sh -->\n"
    f"- skopeo-zstd-chunked: `{sk}`\n"
    f"- ctr-remote-estargz, ctr-remote-zstd-chunked: ctr-remote from `{cr}`, with `{cd}`\n"
    "<!-- end producers -->"
)
new = re.sub(r"<!-- producers: written by make.sh -->.*?<!-- end producers -->", block, text, flags=re.S)
if new == text and block not in text:
    sys.exit("make.sh: README.md has no producers block to update")
open(path, "w").write(new)
EOF
du -b "$here"/*/blobs/* | sort -n | awk '{ printf "%8d %s\n", $1, $2 }'
echo "make.sh: done; review git diff --stat $here"
