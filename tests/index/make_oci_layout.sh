#!/bin/bash
# make_oci_layout.sh LAYER.tar OUTDIR: an OCI layout (tag "t") with one uncompressed layer, for skopeo.
set -e
tarf=$1; out=$2
rm -rf $out; mkdir -p $out/blobs/sha256
echo '{"imageLayoutVersion":"1.0.0"}' > $out/oci-layout
ld=$(sha256sum $tarf | cut -d' ' -f1); ls=$(stat -c %s $tarf)
cp $tarf $out/blobs/sha256/$ld
cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:'$ld'"]},"config":{}}'
printf '%s' "$cfg" > $out/cfg; cd_=$(sha256sum $out/cfg | cut -d' ' -f1); cs=$(stat -c %s $out/cfg); mv $out/cfg $out/blobs/sha256/$cd_
man='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$cd_'","size":'$cs'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$ld'","size":'$ls'}]}'
printf '%s' "$man" > $out/man; md=$(sha256sum $out/man | cut -d' ' -f1); ms=$(stat -c %s $out/man); mv $out/man $out/blobs/sha256/$md
echo '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'$md'","size":'$ms',"annotations":{"org.opencontainers.image.ref.name":"t"}}]}' > $out/index.json
