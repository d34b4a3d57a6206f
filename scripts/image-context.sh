#!/usr/bin/env bash
# Lays out the build context of deploy/Dockerfile in DIR: the static collector binary BIN, the default
# configuration, and the host's CA bundle (Debian's ca-certificates), so that the image builds offline,
# FROM scratch, with nothing pulled from a registry, and its OTLP exporters can still verify TLS
# backends. Used by `make image` and by the container test (internal/distrotest), one list of files.
#   scripts/image-context.sh BIN DIR
set -euo pipefail
[[ $# == 2 ]] || { echo "usage: $0 BIN DIR" >&2; exit 2; }
bin=$1 dir=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
ca=/etc/ssl/certs/ca-certificates.crt
[[ -x $bin ]] || { echo "image-context.sh: $bin is not an executable (make build)" >&2; exit 1; }
file -b "$bin" 2>/dev/null | grep -q 'statically linked' || [[ ! -x /usr/bin/file ]] ||
	{ echo "image-context.sh: $bin is not statically linked (build it with CGO_ENABLED=0, as make build does)" >&2; exit 1; }
[[ -r $ca ]] || { echo "image-context.sh: no CA bundle at $ca (apt-get install ca-certificates)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/etc/otelcol-ebpfnet" "$dir/etc/ssl/certs"
cp "$bin" "$dir/otelcol-ebpfnet"
cp "$root/config/default.yaml" "$dir/etc/otelcol-ebpfnet/config.yaml"
cp "$ca" "$dir/etc/ssl/certs/ca-certificates.crt"
cp "$root/deploy/Dockerfile" "$dir/Dockerfile"
