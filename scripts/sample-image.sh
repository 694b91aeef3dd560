#!/usr/bin/env bash
# Builds hoist's embedded sample image as an OCI layout: a small busybox rootfs (Debian's
# busybox-static) with a few data files, in two layers, the second deleting a file.
# Usage: scripts/sample-image.sh LAYOUT_DIR   (creates LAYOUT_DIR:latest)
set -euo pipefail
layout=${1:?usage: sample-image.sh LAYOUT_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,tmp,root,usr/share/hoist-sample,var/lib/data}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh ls cat echo wc sha256sum head tail id uname sleep true false env find du; do
  ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$rootfs/etc/group"
echo "hello from a lazily mounted image" >"$rootfs/usr/share/hoist-sample/hello.txt"
# A few MB of data that a lazy mount should not need to fetch to run `cat hello.txt`.
head -c 8388608 /dev/urandom >"$rootfs/var/lib/data/blob.bin"
for i in $(seq 1 200); do echo "file $i" >"$rootfs/usr/share/hoist-sample/f$i.txt"; done
echo "to be deleted" >"$rootfs/etc/obsolete.conf"

umoci init --layout "$layout" >/dev/null 2>&1 || true
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" "$rootfs" / >/dev/null
umoci insert --image "$layout:latest" --whiteout /etc/obsolete.conf >/dev/null
umoci config --image "$layout:latest" --config.cmd /bin/sh --config.cmd -c \
  --config.cmd 'cat /usr/share/hoist-sample/hello.txt' \
  --config.env PATH=/bin --config.workingdir / \
  --config.label org.opencontainers.image.title=hoist-sample \
  --architecture amd64 --os linux >/dev/null
umoci gc --layout "$layout"
