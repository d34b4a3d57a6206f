#!/bin/bash
# Kernel matrix: boot Debian kernels under qemu (TCG, software emulation: KVM cannot run them on
# this machine kind) and run a static Go test binary inside each one. See README.md.
#
#   km.sh deps                          install the host packages it needs (apt-get update first)
#   km.sh fetch [KERNEL...]             download/refresh kernels into the cache (default: KM_KERNELS)
#   km.sh list                          the cached kernels
#   km.sh exec KERNEL BIN [ARGS...]     run BIN ARGS in one kernel: its output on stdout, its exit code
#                                       (what vmexec.sh, the go test -exec wrapper, calls)
#   km.sh run BIN [ARGS...]             run BIN ARGS on every kernel of KM_KERNELS, KM_JOBS VMs at a time,
#                                       print a line per kernel; exit 1 if any kernel fails
#   km.sh initramfs KERNEL BIN OUT [ARGS...]   only build the initramfs (for debugging)
#
# KERNEL is host (run BIN directly on this machine), 5.10, 6.1, 6.12, latest (x86-64), arm64-6.1,
# arm64-6.12, arm64-latest (arm64, emulated on this x86-64 machine), or NAME=META/SUITE for any
# Debian kernel meta-package (e.g. trixie=linux-image-cloud-amd64/trixie; a META ending in -arm64
# is an arm64 kernel). BIN must be built for the kernel's architecture: `run` takes the arm64 build
# from KM_BIN_ARM64 (and an x86-64 build from KM_BIN_AMD64 when BIN is the arm64 one).
set -Eeuo pipefail

here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
KM_CACHE=${KM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/otelcol-ebpfnet/kernels}
KM_KERNELS=${KM_KERNELS:-host 5.10 6.1 6.12 latest arm64-6.1 arm64-6.12 arm64-latest}
KM_JOBS=${KM_JOBS:-2}
# VMs on this machine at once, across all km.sh processes (parallel go test -exec runs, several users)
KM_MAX_VMS=${KM_MAX_VMS:-2}
KM_CPUS=${KM_CPUS:-1}
KM_MEM=${KM_MEM:-1536}
KM_TIMEOUT=${KM_TIMEOUT:-600}
KM_APPEND=${KM_APPEND:-mitigations=off}
KM_TOOLS=${KM_TOOLS:-ip ss tc bpftool}
# Always loaded in the guest (with their dependencies): veth pairs and netns plumbing, tc clsact +
# cls_bpf/act_bpf, netem for loss/delay, and the sock_diag modules `ss` needs.
KM_BASE_MODULES="veth sch_ingress cls_bpf act_bpf sch_netem dummy
	inet_diag tcp_diag udp_diag raw_diag unix_diag af_packet_diag netlink_diag"
# Loaded before anything else, by architecture: the arm64 virt board has one serial port (the
# console), so the test's output and the status lines go to two virtio consoles (modules on 6.1).
KM_EARLY_MODULES_arm64="virtio_pci virtio_console"
KM_MODULES=${KM_MODULES:-}
# The arm64 guest's busybox, iproute2 and bpftool: Debian's arm64 packages of this suite (default:
# the host's release), downloaded with their libraries through the private apt state.
KM_USERLAND_SUITE=${KM_USERLAND_SUITE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}
KM_USERLAND_PKGS="busybox-static iproute2 bpftool"
# Environment passed into the guest when set here (plus the names in KM_PASSENV).
KM_ENV_DEFAULT="CI GOTRACEBACK GODEBUG GOMAXPROCS"
KM_PASSENV=${KM_PASSENV:-}

die() {
	echo "km: $*" >&2
	exit 2
}
trap 'echo "km: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

spec_of() {
	case $1 in
	*=*/*) echo "${1#*=}" ;;
	5.10) echo linux-image-cloud-amd64/bullseye-security ;;
	6.1) echo linux-image-cloud-amd64/bookworm-security ;;
	6.12) echo linux-image-6.12-cloud-amd64/bookworm-security ;;
	latest) echo linux-image-cloud-amd64/trixie-backports ;;
	arm64-6.1) echo linux-image-cloud-arm64/bookworm-security ;;
	arm64-6.12) echo linux-image-6.12-cloud-arm64/bookworm-security ;;
	arm64-latest) echo linux-image-cloud-arm64/trixie-backports ;;
	*) die "unknown kernel '$1' (known: host 5.10 6.1 6.12 latest arm64-6.1 arm64-6.12 arm64-latest, or NAME=META-PACKAGE/SUITE)" ;;
	esac
}
label_of() { echo "${1%%=*}"; }
# the Debian architecture of META/SUITE: the meta-package's suffix
arch_of_spec() {
	case $1 in
	*-arm64/*) echo arm64 ;;
	*) echo amd64 ;;
	esac
}
# the Debian architecture of a kernel (KERNEL or NAME=META/SUITE)
arch_of() {
	if [ "$1" = host ]; then dpkg --print-architecture; else arch_of_spec "$(spec_of "$1")"; fi
}
# the architecture of a cached kernel, by label
arch_of_label() {
	if [ "$1" = host ]; then dpkg --print-architecture; else arch_of_spec "$(info_of "$1" spec)"; fi
}
# the Debian architecture an ELF binary is built for (e_machine at offset 18)
elf_arch() {
	case $(od -An -tx2 -j18 -N2 "$1" | tr -d ' ') in
	003e) echo amd64 ;;
	00b7) echo arm64 ;;
	*) echo unknown ;;
	esac
}

# ---------------------------------------------------------------- host packages

cmd_deps() {
	local need=() p
	for p in qemu-system-x86 qemu-system-arm busybox-static kmod cpio xz-utils zstd gzip iproute2 bpftool util-linux binutils; do
		dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	echo "km: installing ${need[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

need_tools() {
	local t
	for t in qemu-system-x86_64 qemu-system-aarch64 depmod modprobe cpio xz zstd ip ss tc bpftool flock readelf; do
		command -v "$t" >/dev/null || {
			cmd_deps
			return
		}
	done
	if ! [ -x /bin/busybox ] || ! /bin/busybox --list | grep -qx stty; then cmd_deps; fi
}

# ---------------------------------------------------------------- kernels (private apt state)

# apt_setup NAME ARCH SUITE...: a private apt state KM_CACHE/apt-NAME for ARCH's packages of those
# suites (APTO: its options). The status file is empty: nothing is installed there, and what this
# machine has installed says nothing about another architecture.
APTO=()
apt_setup() {
	local st=$KM_CACHE/apt-$1 arch=$2 kr=/usr/share/keyrings/debian-archive-keyring.gpg mirror sec s
	shift 2
	# The Debian mirror this machine's apt already uses (first deb / URIs: entry ending in /debian).
	mirror=${KM_MIRROR:-$(grep -hoE '^(URIs:|deb)( +\[[^]]*\])? +[a-z]+://[^ ]+' \
		/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		awk '{print $NF}' | grep -E '/debian/?$' | head -1 || true)}
	[ -n "$mirror" ] || die "cannot find a Debian mirror in the apt sources; set KM_MIRROR"
	mirror=${mirror%/}
	sec=${KM_SECURITY_MIRROR:-$(grep -hoE '^(URIs:|deb)( +\[[^]]*\])? +[a-z]+://[^ ]+' \
		/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		awk '{print $NF}' | grep -E '/debian-security/?$' | head -1 || true)}
	sec=${sec:-$mirror-security}
	sec=${sec%/}
	mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
	for s in "$@"; do
		case $s in
		*-security) echo "deb [signed-by=$kr] $sec $s main" ;;
		*) echo "deb [signed-by=$kr] $mirror $s main" ;;
		esac
	done | sort -u >"$st/sources.list"
	mkdir -p "$st/preferences.d"
	: >"$st/status"
	APTO=(-o Dir::Etc::sourcelist="$st/sources.list" -o Dir::Etc::sourceparts=- -o Dir::Etc::preferencesparts="$st/preferences.d"
		-o Dir::State::Lists="$st/lists" -o Dir::State::status="$st/status" -o Dir::Cache="$st/cache"
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=none
		-o APT::Architecture="$arch" -o APT::Architectures="$arch")
	apt-get "${APTO[@]}" -qq update
}

# name=version of the versioned linux-{image,binary,modules,base}-N... packages a package depends on exactly.
# The awk programs here read apt-cache's output to the end: one that exits early makes apt-cache die of
# SIGPIPE once its output outgrows the pipe, which pipefail turns into a failed fetch.
exact_deps() {
	apt-cache "${APTO[@]}" show "$1" 2>/dev/null | awk '/^Depends:/ && !done {sub(/^Depends: */, ""); print; done = 1}' |
		tr ',' '\n' | sed -E 's/\|.*//; s/^ +//; s/ +$//' |
		sed -nE 's/^(linux-(image|binary|modules|base)-[0-9][^ ]*) \(= ([^)]+)\)$/\1=\3/p'
}

fetch_one() { # kernel-spec (label or NAME=META/SUITE)
	local label spec meta suite ver dir pkgs=() queue=() p d kver vml tmp
	local -A seen=()
	label=$(label_of "$1")
	spec=$(spec_of "$1")
	meta=${spec%/*} suite=${spec#*/}
	dir=$KM_CACHE/$label
	ver=$(apt-cache "${APTO[@]}" show "$meta/$suite" 2>/dev/null | awk '/^Version:/ && !v {v = $2} END {print v}')
	[ -n "$ver" ] || die "$label: $meta not found in $suite"
	mapfile -t queue < <(exact_deps "$meta/$suite")
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		[ -z "${seen[$p]:-}" ] || continue
		seen[$p]=1
		pkgs+=("$p")
		mapfile -t -O ${#queue[@]} queue < <(exact_deps "$p")
	done
	[ ${#pkgs[@]} -gt 0 ] || die "$label: no kernel image package found behind $meta/$suite"
	if [ -f "$dir/info" ] && [ "$(sed -n 's/^pkgs=//p' "$dir/info")" = "${pkgs[*]}" ]; then
		echo "km: $label: up to date (${pkgs[*]})"
		return
	fi
	echo "km: $label: downloading ${pkgs[*]}"
	tmp=$KM_CACHE/.tmp-$label
	rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
	(cd "$tmp/debs" && apt-get "${APTO[@]}" -qq download "${pkgs[@]}")
	for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/root"; done
	rm -rf "$tmp/debs" "$tmp/root/usr/share/doc" "$tmp/root/usr/share/bug" "$tmp/root/usr/share/lintian"
	# newer packaging (linux-binary-*/linux-modules-*) installs into /usr/lib/modules only
	[ -e "$tmp/root/lib" ] || ln -s usr/lib "$tmp/root/lib"
	kver=$(find "$tmp/root/lib/modules/" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -1)
	[ -n "$kver" ] || die "$label: no modules directory in ${pkgs[*]}"
	vml=$(cd "$tmp/root" && { find boot "lib/modules/$kver" -maxdepth 1 -name 'vmlinuz*' 2>/dev/null || true; } | head -1)
	[ -n "$vml" ] || die "$label: no vmlinuz in ${pkgs[*]}"
	depmod -b "$tmp/root" "$kver"
	{
		echo "label=$label"
		echo "spec=$spec"
		echo "version=$ver"
		echo "kver=$kver"
		echo "vmlinuz=$vml"
		echo "pkgs=${pkgs[*]}"
	} >"$tmp/info"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	echo "km: $label: $kver ($ver) -> $dir"
}

# fetch_userland ARCH: busybox, iproute2 and bpftool of another architecture with the packages they
# depend on, unpacked into KM_CACHE/userland-ARCH/root. Its own apt state holds KM_USERLAND_SUITE
# only, and apt's resolver (an install into the empty status, printed, not done) picks one package
# for each dependency: two of them cannot overwrite each other's libraries.
fetch_userland() {
	local arch=$1 dir=$KM_CACHE/userland-$1 tmp debs pkgs d
	apt_setup "userland-$arch" "$arch" "$KM_USERLAND_SUITE"
	# shellcheck disable=SC2086 # a word list
	debs=$(apt-get "${APTO[@]}" -qq --print-uris --no-install-recommends install $KM_USERLAND_PKGS |
		awk '{print $2}' | sort | tr '\n' ' ')
	[ -n "$debs" ] || die "userland-$arch: nothing to download for $KM_USERLAND_PKGS"
	if [ -f "$dir/info" ] && [ "$(sed -n 's/^debs=//p' "$dir/info")" = "$debs" ]; then
		echo "km: userland-$arch: up to date"
		return
	fi
	# NAME_VERSION_ARCH.deb (the epoch's colon URL-encoded) -> NAME=VERSION
	mapfile -t pkgs < <(tr ' ' '\n' <<<"$debs" | sed -nE 's/^([^_]+)_([^_]+)_[^_]+\.deb$/\1=\2/p' | sed 's/%3a/:/g')
	echo "km: userland-$arch: downloading $KM_USERLAND_PKGS and $((${#pkgs[@]} - 3)) dependencies ($KM_USERLAND_SUITE)"
	tmp=$KM_CACHE/.tmp-userland-$arch
	rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
	(cd "$tmp/debs" && apt-get "${APTO[@]}" -qq download "${pkgs[@]}")
	for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/root"; done
	rm -rf "$tmp/debs" "$tmp/root/usr/share/doc" "$tmp/root/usr/share/man" "$tmp/root/usr/share/locale"
	printf 'suite=%s\ndebs=%s\n' "$KM_USERLAND_SUITE" "$debs" >"$tmp/info"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	echo "km: userland-$arch: -> $dir"
}

# fetch [--missing] KERNEL...: with --missing only kernels not in the cache yet (no apt traffic at all
# when everything is there); without it every kernel is re-resolved and re-downloaded if it changed.
# A kernel of another architecture than this machine's brings that architecture's userland along.
cmd_fetch() {
	local missing=0 k spec arch host_arch
	local -A want=() suites=()
	[ "${1:-}" = --missing ] && missing=1 && shift
	# shellcheck disable=SC2086 # a word list
	[ $# -gt 0 ] || set -- $KM_KERNELS
	host_arch=$(dpkg --print-architecture)
	for k in "$@"; do
		[ "$k" = host ] && continue
		spec=$(spec_of "$k")
		arch=$(arch_of "$k")
		[ $missing = 1 ] && [ -f "$KM_CACHE/$(label_of "$k")/info" ] &&
			{ [ "$arch" = "$host_arch" ] || [ -f "$KM_CACHE/userland-$arch/info" ]; } && continue
		want[$arch]+=" $k"
		suites[$arch]+=" ${spec#*/}"
	done
	[ ${#want[@]} -gt 0 ] || return 0
	need_tools
	mkdir -p "$KM_CACHE"
	exec 9>"$KM_CACHE/.lock"
	flock 9
	for arch in "${!want[@]}"; do
		if [ "$arch" != "$host_arch" ] && { [ $missing = 0 ] || ! [ -f "$KM_CACHE/userland-$arch/info" ]; }; then
			[ -n "$KM_USERLAND_SUITE" ] || die "no Debian release in /etc/os-release: set KM_USERLAND_SUITE"
			fetch_userland "$arch"
		fi
		# shellcheck disable=SC2086 # a word list
		apt_setup "$arch" "$arch" ${suites[$arch]}
		for k in ${want[$arch]}; do
			if [ $missing = 0 ] || ! [ -f "$KM_CACHE/$(label_of "$k")/info" ]; then fetch_one "$k"; fi
		done
	done
	exec 9>&-
}

info_of() { sed -n "s/^$2=//p" "$KM_CACHE/$1/info"; }

cmd_list() {
	local d
	for d in "$KM_CACHE"/*/info; do
		[ -f "$d" ] || continue
		d=$(basename "$(dirname "$d")")
		printf '%-8s %-28s %-22s %s\n' "$d" "$(info_of "$d" kver)" "$(info_of "$d" version)" "$(info_of "$d" spec)"
	done
}

# ---------------------------------------------------------------- initramfs

squote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# the host's iproute2 tools (dynamically linked) with the shared libraries ldd names, at their host paths
copy_tools() { # stage tool...
	local stage=$1 t p files=()
	shift
	for t in "$@"; do
		p=$(command -v "$t") || die "$t not found on the host (km.sh deps installs iproute2 and bpftool)"
		files+=("$p")
	done
	mapfile -t -O ${#files[@]} files < <(ldd "${files[@]}" | awk '$2=="=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && NF > 1 {print $1}' | sort -u)
	cp -L --parents "${files[@]}" "$stage"
}

# the multiarch library directory name of a Debian architecture
triplet_of() {
	case $1 in
	arm64) echo aarch64-linux-gnu ;;
	amd64) echo x86_64-linux-gnu ;;
	*) die "no library triplet known for $1" ;;
	esac
}

# in_root ROOT PATH: PATH (inside ROOT) with its symbolic links followed inside ROOT, as a chroot
# would (the packages' links are often absolute: /sbin/ip -> /bin/ip)
in_root() {
	local root=$1 p=$2 t i=0
	while [ -L "$p" ] && [ $i -lt 20 ]; do
		t=$(readlink "$p")
		case $t in
		/*) p=$root$t ;;
		*) p=$(dirname "$p")/$t ;;
		esac
		i=$((i + 1))
	done
	echo "$p"
}

# copy_foreign_tools STAGE ARCH TOOL...: another architecture's tools from its userland (no ldd
# there: the shared libraries are followed through readelf's NEEDED entries and the interpreter),
# each file at its path under /usr (the stage is merged-/usr like the host)
copy_foreign_tools() {
	local stage=$1 arch=$2 ul=$KM_CACHE/userland-$2/root trip f n d found rel t
	local -A seen=()
	local queue=() files=() # paths as they are looked up; the content is in_root's
	shift 2
	trip=$(triplet_of "$arch")
	for t in "$@"; do
		found=
		for d in usr/sbin usr/bin sbin bin; do
			[ -e "$ul/$d/$t" ] && found=$ul/$d/$t && break
		done
		[ -n "$found" ] || die "$t not in the $arch userland ($KM_USERLAND_PKGS; KM_TOOLS names the tools)"
		queue+=("$found")
	done
	while [ ${#queue[@]} -gt 0 ]; do
		files+=("${queue[0]}")
		f=$(in_root "$ul" "${queue[0]}")
		queue=("${queue[@]:1}")
		[ -f "$f" ] || die "${files[-1]#"$ul/"}: no such file in the $arch userland"
		for n in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p') \
			$(readelf -l "$f" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p'); do
			[ -z "${seen[$n]:-}" ] || continue
			seen[$n]=1
			found=
			case $n in
			/*) [ -e "$(in_root "$ul" "$ul$n")" ] && found=$ul$n ;;
			*) for d in "usr/lib/$trip" "lib/$trip" usr/lib lib; do
				[ -e "$(in_root "$ul" "$ul/$d/$n")" ] && found=$ul/$d/$n && break
			done ;;
			esac
			[ -n "$found" ] || die "$n (needed by ${f#"$ul/"}) not in the $arch userland"
			queue+=("$found")
		done
	done
	for f in "${files[@]}"; do
		rel=${f#"$ul/"}
		rel=usr/${rel#usr/}
		mkdir -p "$(dirname "$stage/$rel")"
		cp "$(in_root "$ul" "$f")" "$stage/$rel"
	done
}

# stage_modules ROOT KVER STAGE LIST MODULE...: MODULE and its dependencies, decompressed, each after
# its dependencies, appended to STAGE/km/LIST (a module already in a list of STAGE/km is skipped)
stage_modules() {
	local root=$1 kver=$2 stage=$3 list=$4 m p rel n
	shift 4
	for m in "$@"; do
		if ! modprobe -d "$root" -S "$kver" --show-depends "$m" >"$stage/km/dep" 2>/dev/null; then
			echo "km: $(basename "$(dirname "$root")"): module $m not found (neither built in nor a module)" >&2
			continue
		fi
		awk '$1=="insmod"{print $2}' "$stage/km/dep"
	done | awk '!seen[$0]++' | while read -r p; do
		rel=${p#"$root/lib/modules/$kver/"}
		rel=${rel#"$root/usr/lib/modules/$kver/"}
		n=${rel%.xz}
		n=${n%.zst}
		n=${n%.gz}
		grep -qxF "$n" "$stage"/km/modules.* && continue
		mkdir -p "$(dirname "$stage/lib/modules/$kver/$n")"
		case $p in
		*.xz) xz -dc "$p" >"$stage/lib/modules/$kver/$n" ;;
		*.zst) zstd -qdc "$p" >"$stage/lib/modules/$kver/$n" ;;
		*.gz) gzip -dc "$p" >"$stage/lib/modules/$kver/$n" ;;
		*) cp "$p" "$stage/lib/modules/$kver/$n" ;;
		esac
		echo "$n" >>"$stage/km/$list"
	done
	rm -f "$stage/km/dep"
}

# build_base LABEL OUT: the part of the initramfs that is the same for every test binary: busybox,
# iproute2 and bpftool with their shared libraries (this machine's, or the userland of the kernel's
# architecture), the modules, /init and the names of its two output devices.
build_base() {
	local label=$1 out=$2 root kver stage p arch ul early
	root=$KM_CACHE/$label/root
	kver=$(info_of "$label" kver)
	arch=$(arch_of_label "$label")
	stage=$(mktemp -d "${TMPDIR:-/tmp}/km-initramfs.XXXXXX")
	# shellcheck disable=SC2064 # expand now: the local is gone when the trap runs
	trap "rm -rf '$stage'; trap - RETURN" RETURN
	# merged-/usr layout like the host's; /init runs `busybox --install -s`, which keeps the real
	# ip/ss/tc (a symlink never replaces an existing file): busybox's ip knows neither veth nor netns.
	mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib,usr/lib64,dev,proc,sys,tmp,run,root,etc,km}
	ln -s usr/bin "$stage/bin"
	ln -s usr/sbin "$stage/sbin"
	ln -s usr/lib "$stage/lib"
	ln -s usr/lib64 "$stage/lib64"
	mkdir -p "$stage/lib/modules/$kver"
	if [ "$arch" = "$(dpkg --print-architecture)" ]; then
		ul=
		cp /bin/busybox "$stage/usr/bin/busybox"
		# shellcheck disable=SC2086 # a word list
		copy_tools "$stage" $KM_TOOLS
	else
		ul=$KM_CACHE/userland-$arch/root
		cp "$ul/bin/busybox" "$stage/usr/bin/busybox"
		# shellcheck disable=SC2086 # a word list
		copy_foreign_tools "$stage" "$arch" $KM_TOOLS
	fi
	ln -s busybox "$stage/usr/bin/sh"
	[ -d "$ul/etc/iproute2" ] && cp -r "$ul/etc/iproute2" "$stage/etc/"
	[ -d "$ul/usr/share/iproute2" ] && mkdir -p "$stage/usr/share" && cp -r "$ul/usr/share/iproute2" "$stage/usr/share/"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$stage/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
	printf '127.0.0.1\tlocalhost kmvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$stage/etc/hosts"
	printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"
	[ -f /etc/services ] && cp /etc/services "$stage/etc/"
	[ -f /etc/protocols ] && cp /etc/protocols "$stage/etc/"

	# modules: the early ones (/init loads them before it opens its output devices), then the rest,
	# plus a modules.dep for busybox modprobe
	: >"$stage/km/modules.early"
	: >"$stage/km/modules.load"
	early=KM_EARLY_MODULES_$arch
	# shellcheck disable=SC2086 # word lists
	stage_modules "$root" "$kver" "$stage" modules.early ${!early:-}
	# shellcheck disable=SC2086
	stage_modules "$root" "$kver" "$stage" modules.load $KM_BASE_MODULES $KM_MODULES
	for p in modules.builtin modules.builtin.modinfo modules.order; do
		[ -f "$root/lib/modules/$kver/$p" ] && cp "$root/lib/modules/$kver/$p" "$stage/lib/modules/$kver/"
	done
	depmod -b "$stage" "$kver"

	guest_devices "$arch" >"$stage/km/devices"
	cp "$here/init.sh" "$stage/init"
	chmod 0755 "$stage/init"
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out"
}

# base_initrd LABEL: the cached base archive of LABEL, (re)built when an input changed
base_initrd() {
	local label=$1 key t f out
	key=$({
		cat "$here/km.sh" "$here/init.sh" "$KM_CACHE/$label/info"
		cat "$KM_CACHE/userland-$(arch_of_label "$label")/info" 2>/dev/null || true
		echo "$KM_TOOLS | $KM_BASE_MODULES | $KM_MODULES"
		for t in busybox $KM_TOOLS; do
			f=$(command -v "$t") && stat -L -c '%n %s %Y' "$f"
		done
	} | sha256sum | cut -c1-16)
	out=$KM_CACHE/$label/base-$key.cpio
	if [ ! -s "$out" ]; then
		exec 8>"$KM_CACHE/$label/.lock"
		flock 8
		if [ ! -s "$out" ]; then
			rm -f "$KM_CACHE/$label"/base-*.cpio
			build_base "$label" "$out.tmp"
			mv "$out.tmp" "$out"
		fi
		exec 8>&-
	fi
	echo "$out"
}

# build_initrd LABEL BIN OUT [ARGS...]: the base archive followed by a second one (the kernel unpacks
# both) with the test binary as /km/test and /km/run.sh, which runs it with ARGS.
build_initrd() {
	local label=$1 bin=$2 out=$3 base stage n v
	shift 3
	# (called in `||` lists, where set -e does not act: check by hand)
	base=$(base_initrd "$label") && [ -s "$base" ] || {
		echo "km: $label: no base initramfs" >&2
		return 1
	}
	stage=$(mktemp -d "${TMPDIR:-/tmp}/km-initramfs.XXXXXX")
	# shellcheck disable=SC2064 # expand now: the local is gone when the trap runs
	trap "rm -rf '$stage'; trap - RETURN" RETURN
	mkdir -p "$stage/km"
	cp "$bin" "$stage/km/test"
	chmod 0755 "$stage/km/test"
	{
		echo "# written by km.sh"
		echo "export KM_KERNEL=$(squote "$label") KM_GUEST=1"
		for n in $KM_ENV_DEFAULT $KM_PASSENV; do
			[ -n "${!n+x}" ] || continue
			v=${!n}
			echo "export $n=$(squote "$v")"
		done
		printf 'exec /km/test'
		for v in "$@"; do printf ' %s' "$(squote "$v")"; done
		echo
	} >"$stage/km/run.sh"

	# Uncompressed: under TCG the guest would spend seconds gunzipping it.
	{
		cat "$base"
		(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0)
	} >"$out"
}

# ---------------------------------------------------------------- booting

# guest_devices ARCH: /init's output and status devices, as boot wires them up (/km/devices)
guest_devices() {
	case $1 in
	arm64) echo "KM_OUT=/dev/hvc0 KM_STATUS=/dev/hvc1" ;;
	*) echo "KM_OUT=/dev/ttyS1 KM_STATUS=/dev/ttyS2" ;;
	esac
}

# boot LABEL INITRD DIR: console.log, out.log (test output), status.log, qemu.log in DIR;
# returns timeout's/qemu's exit code (124: timed out)
# x86-64: the pc board's serial ports 1-3. arm64: the virt board has one serial port (the console);
# the output and the status lines go to two virtio consoles (hvc0, hvc1). Its Debian vmlinuz is a
# plain Image that -kernel boots without firmware. -cpu max alone emulates the architected pointer
# authentication (QARMA), which is several times slower than the implementation-defined one.
boot() {
	local label=$1 initrd=$2 dir=$3 vml rc=0 qemu
	vml=$KM_CACHE/$label/root/$(info_of "$label" vmlinuz)
	case $(arch_of_label "$label") in
	arm64)
		qemu=(qemu-system-aarch64 -machine virt,accel=tcg -cpu max,pauth-impdef=on
			-append "console=ttyAMA0 quiet panic=-1 random.trust_cpu=on $KM_APPEND"
			-serial "file:$dir/console.log" -device virtio-serial-pci
			-chardev "file,id=kmout,path=$dir/out.log" -device virtconsole,chardev=kmout,nr=0
			-chardev "file,id=kmstatus,path=$dir/status.log" -device virtconsole,chardev=kmstatus,nr=1)
		;;
	*)
		qemu=(qemu-system-x86_64 -machine pc,accel=tcg -cpu max
			-append "console=ttyS0 quiet panic=-1 random.trust_cpu=on $KM_APPEND"
			-serial "file:$dir/console.log" -serial "file:$dir/out.log" -serial "file:$dir/status.log")
		;;
	esac
	: >"$dir/console.log"
	: >"$dir/out.log"
	: >"$dir/status.log"
	local t0
	t0=$(now)
	acquire_vm_slot
	since "$t0" >"$dir/slot-wait"
	timeout -k 10 "$KM_TIMEOUT" "${qemu[@]}" -nodefaults -no-user-config \
		-smp "$KM_CPUS" -m "$KM_MEM" -display none -no-reboot -kernel "$vml" -initrd "$initrd" \
		</dev/null >"$dir/qemu.log" 2>&1 || rc=$?
	exec {vm_slot}>&-
	return $rc
}

# acquire_vm_slot: wait for one of KM_MAX_VMS lock files; the lock lasts until vm_slot is closed
vm_slot=
acquire_vm_slot() {
	local i
	mkdir -p "$KM_CACHE/.vm-slots"
	while :; do
		for ((i = 0; i < KM_MAX_VMS; i++)); do
			exec {vm_slot}>"$KM_CACHE/.vm-slots/$i"
			flock -n "$vm_slot" && return 0
			exec {vm_slot}>&-
		done
		sleep 1
	done
}

status_of() { sed -n "s/^$2//p" "$1/status.log" | tr -d '\r' | tail -1; }

# ---------------------------------------------------------------- exec: one kernel, go test -exec style

cmd_exec() {
	[ $# -ge 2 ] || die "usage: km.sh exec KERNEL BIN [ARGS...]"
	local k=$1 bin label w rc qrc=0
	bin=$(realpath "$2")
	shift 2
	label=$(label_of "$k")
	if [ "$label" = host ]; then
		w=$(mktemp -d "${TMPDIR:-/tmp}/km-host.XXXXXX")
		rc=0
		(cd "$w" && KM_KERNEL=host ${KM_HOST_LOCK:+flock "$KM_HOST_LOCK"} "$bin" "$@") </dev/null || rc=$?
		rm -rf "$w"
		exit $rc
	fi
	[ "$(elf_arch "$bin")" = "$(arch_of "$k")" ] ||
		die "$label is an $(arch_of "$k") kernel and ${bin##*/} is built for $(elf_arch "$bin") (GOARCH=$(arch_of "$k") builds one)"
	cmd_fetch --missing "$k" >&2
	need_tools
	w=$(mktemp -d "${TMPDIR:-/tmp}/km-exec.XXXXXX")
	# shellcheck disable=SC2064
	[ -n "${KM_KEEP:-}" ] || trap "rm -rf '$w'" EXIT
	build_initrd "$label" "$bin" "$w/initrd" "$@"
	boot "$label" "$w/initrd" "$w" || qrc=$?
	rm -f "$w/initrd"
	cat "$w/out.log"
	rc=$(status_of "$w" "KM-RC ")
	if [ -z "$rc" ]; then
		echo "km: $label: no exit code from the guest ($([ $qrc = 124 ] && echo "timed out after ${KM_TIMEOUT}s" || echo "qemu exit $qrc")); console tail:" >&2
		tail -n 40 "$w/console.log" | tr -d '\r' >&2
		tail -n 5 "$w/qemu.log" >&2
		exit 1
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- run: the matrix

# run_one LABEL LOGDIR BIN ARGS...: writes LOGDIR/LABEL.log (test output) and LOGDIR/LABEL/ (console,
# status, result), prints a progress line
run_one() {
	local label=$1 logdir=$2 bin=$3 d start rc qrc=0 res kver booted done_up version
	shift 3
	d=$logdir/$label
	mkdir -p "$d"
	start=$(now)
	if [ "$label" = host ]; then
		rc=0
		mkdir -p "$d/work"
		(cd "$d/work" && KM_KERNEL=host ${KM_HOST_LOCK:+flock "$KM_HOST_LOCK"} "$bin" "$@") </dev/null >"$logdir/$label.log" 2>&1 || rc=$?
		rmdir "$d/work" 2>/dev/null || true
		kver=$(uname -r) booted='' done_up=''
		res=$([ "$rc" = 0 ] && echo PASS || echo "FAIL(rc=$rc)")
		version=host
	else
		build_initrd "$label" "$bin" "$d/initrd" "$@" 2>"$d/build.log" || {
			cat "$d/build.log" >&2
			return 1
		}
		boot "$label" "$d/initrd" "$d" || qrc=$?
		rm -f "$d/initrd"
		mv "$d/out.log" "$logdir/$label.log"
		rc=$(status_of "$d" "KM-RC ")
		kver=$(status_of "$d" "KM-BOOTED kernel=" | cut -d' ' -f1)
		booted=$(status_of "$d" "KM-BOOTED " | sed -n 's/.*uptime=//p')
		done_up=$(status_of "$d" "KM-DONE uptime=")
		version=$(info_of "$label" version)
		if [ -n "$rc" ]; then
			res=$([ "$rc" = 0 ] && echo PASS || echo "FAIL(rc=$rc)")
		elif [ "$qrc" = 124 ]; then
			res=TIMEOUT
		else
			res="NO-RC(qemu=$qrc)"
		fi
	fi
	{
		echo "label=$label"
		echo "kver=${kver:-$(info_of "$label" kver 2>/dev/null || true)}"
		echo "version=$version"
		echo "result=$res"
		echo "boot=${booted:-}"
		echo "guest=${done_up:-}"
		echo "wall=$(since "$start")"
		echo "wait=$(cat "$d/slot-wait" 2>/dev/null || true)"
	} >"$d/result"
	echo "km: done $(result_line "$d/result")"
}

result_line() {
	awk -F= '{v[$1]=substr($0, length($1)+2)} END{
		printf "%-12s %-27s %-19s %-13s boot %6s  guest %7s  wall %7s%s\n", v["label"], v["kver"], v["version"],
			v["result"], (v["boot"]=="" ? "-" : v["boot"] "s"), (v["guest"]=="" ? "-" : v["guest"] "s"), v["wall"] "s",
			(v["wait"] + 0 > 0.5 ? " (" v["wait"] "s of it waiting for a VM slot)" : "")}' "$1"
}

# the distinct lines of a test log that mention a hook, without go test's file:line and a leading
# timestamp (every test starting a tracer logs the same choice again). A test that prints lines
# containing "KERNEL-MATRIX" chooses exactly what is shown: then only those lines are.
hook_lines() {
	local pat=${KM_HOOK_PATTERN:-hook}
	grep -aq 'KERNEL-MATRIX' "$1" 2>/dev/null && pat=KERNEL-MATRIX
	grep -ai -- "$pat" "$1" 2>/dev/null |
		sed -E 's/^[[:space:]]*//; s/^[[:alnum:]_.-]+\.go:[0-9]+: //; s/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?[[:space:]]+//' |
		awk '!seen[$0]++' | head -n "${KM_HOOK_LINES:-20}" | sed 's/^/        /' || true
}

# bin_for KERNEL BIN: BIN when it is built for KERNEL's architecture, else KM_BIN_<ARCH> (KM_BIN_ARM64,
# KM_BIN_AMD64)
bin_for() {
	local arch v
	arch=$(arch_of "$1")
	[ "$(elf_arch "$2")" = "$arch" ] && realpath "$2" && return
	v=KM_BIN_${arch^^}
	[ -n "${!v:-}" ] || die "$1 is an $arch kernel and ${2##*/} is built for $(elf_arch "$2"): set $v to a GOARCH=$arch build"
	[ -x "${!v}" ] && [ "$(elf_arch "${!v}")" = "$arch" ] || die "$v=${!v}: not an $arch executable"
	realpath "${!v}"
}

cmd_run() {
	[ $# -ge 1 ] || die "usage: km.sh run BIN [ARGS...]"
	local bin k label logdir start fail=0 labels=() args=() has_timeout=0 a r
	local -A bins=()
	bin=$(realpath "$1")
	shift
	[ -x "$bin" ] || die "$bin is not an executable"
	for k in $KM_KERNELS; do bins[$(label_of "$k")]=$(bin_for "$k" "$bin"); done
	for a in "$@"; do case $a in -test.timeout=* | -test.timeout) has_timeout=1 ;; esac done
	args=("$@")
	# the test's own timeout first, so a hang ends with goroutine dumps rather than a killed VM
	[ $has_timeout = 1 ] || args+=("-test.timeout=$((KM_TIMEOUT > 120 ? KM_TIMEOUT - 60 : KM_TIMEOUT))s")
	# shellcheck disable=SC2086
	cmd_fetch --missing $KM_KERNELS
	need_tools
	for k in $KM_KERNELS; do labels+=("$(label_of "$k")"); done
	logdir=${KM_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/km-run.XXXXXX")}
	mkdir -p "$logdir"
	echo "km: ${bin##*/} ${args[*]}"
	for a in $(printf '%s\n' "${bins[@]}" | sort -u); do [ "$a" = "$bin" ] || echo "km: and ${a##*/} on $(elf_arch "$a") kernels"; done
	echo "km: kernels: ${labels[*]}; $KM_JOBS at a time, $KM_CPUS vCPU/${KM_MEM}MB each, timeout ${KM_TIMEOUT}s; logs in $logdir"
	start=$(now)
	for label in "${labels[@]}"; do
		while [ "$(jobs -rp | wc -l)" -ge "$KM_JOBS" ]; do wait -n || true; done
		run_one "$label" "$logdir" "${bins[$label]}" "${args[@]}" &
	done
	wait
	echo
	echo "km: kernel matrix (${bin##*/}, total wall $(since "$start")s with $KM_JOBS at a time)"
	for label in "${labels[@]}"; do
		r=$logdir/$label/result
		if [ ! -f "$r" ]; then
			printf '%-12s %s\n' "$label" "NO RESULT (see $logdir/$label/)"
			fail=1
			continue
		fi
		result_line "$r"
		hook_lines "$logdir/$label.log"
		if [ "$(sed -n 's/^result=//p' "$r")" != PASS ]; then
			fail=1
			grep -aE '^[[:space:]]*--- FAIL' "$logdir/$label.log" | head -n 30 | sed 's/^/    /' || true
			echo "    --- $label: tail of $logdir/$label.log"
			tail -n "${KM_TAIL:-40}" "$logdir/$label.log" | sed 's/^/    | /'
			if ! grep -q '^KM-RC' "$logdir/$label/status.log" 2>/dev/null && [ "$label" != host ]; then
				echo "    --- $label: tail of the console ($logdir/$label/console.log)"
				tail -n 30 "$logdir/$label/console.log" | tr -d '\r' | sed 's/^/    | /'
			fi
		fi
		if [ "$label" != host ] && grep -aqE '(WARNING|BUG|Oops|Call Trace):?' "$logdir/$label/console.log" 2>/dev/null; then
			echo "    note: kernel warnings on the console, see $logdir/$label/console.log"
		fi
		grep -a '^KM-NOTE' "$logdir/$label/status.log" 2>/dev/null | sed 's/^/    /' || true
	done
	exit $fail
}

case ${1:-} in
deps) cmd_deps ;;
fetch)
	shift
	cmd_fetch "$@"
	;;
list) cmd_list ;;
exec)
	shift
	cmd_exec "$@"
	;;
run)
	shift
	cmd_run "$@"
	;;
initramfs)
	shift
	[ $# -ge 3 ] || die "usage: km.sh initramfs KERNEL BIN OUT [ARGS...]"
	cmd_fetch --missing "$1"
	build_initrd "$(label_of "$1")" "$(realpath "$2")" "$(realpath -m "$3")" "${@:4}"
	;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
