#!/bin/bash
# go test -exec wrapper: runs a package's test binary inside one Debian kernel under qemu.
#   CGO_ENABLED=0 KM_KERNEL=6.1 go test -exec "$PWD/scripts/kernel-matrix/vmexec.sh" ./receiver/...
# (an absolute path: go test starts the wrapper in each package's directory)
# KM_KERNEL: 5.10 (default), 6.1, 6.12, latest, arm64-6.1, arm64-6.12, arm64-latest, host or
# NAME=META-PACKAGE/SUITE; see km.sh and README.md. An arm64 kernel needs GOARCH=arm64 go test.
# The binary must be static (CGO_ENABLED=0; no -race) and embed what it needs: inside the guest it
# runs in an empty /tmp/work, with no repository files. Its output is the guest's, its exit code too.
set -euo pipefail
exec "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/km.sh" exec "${KM_KERNEL:-5.10}" "$@"
