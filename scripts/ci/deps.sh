#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, when missing. Run as root.
#   clang-19, llvm-19, libbpf-dev: make generate (pinned: regenerated objects must be byte-identical)
#   bpftool: the tests compare against `bpftool prog/link list`
#   iproute2: `ip` (netns, veth) and `ss` (ground truth for the TCP tests)
#   util-linux: `setpriv` (the end-to-end tests run the collector unprivileged)
set -euo pipefail
pkgs=(clang-19 llvm-19 libbpf-dev bpftool iproute2 util-linux make git)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "clang: $(clang-19 --version | head -1)"
