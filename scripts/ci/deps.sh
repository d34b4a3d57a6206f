#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, when missing, and checks what it cannot
# install. Run as root.
#   scripts/ci/deps.sh        build and tests:
#     clang-19, llvm-19, libbpf-dev: make generate (pinned: regenerated objects must be byte-identical)
#     bpftool: the tests compare against `bpftool prog/link list`
#     iproute2: `ip` (netns, veth) and `ss` (ground truth for the TCP tests)
#     nftables: `nft`, the faults of the TCP health tests (SYNs and data segments dropped on a veth)
#     conntrack: `conntrack -L`, ground truth of the NAT tests (#17)
#     podman, runc: the container tests (a locally built image, the collector in a DaemonSet-like
#       container); runc because crun refuses a hybrid cgroup v1+v2 host like this one
#     util-linux: `setpriv` (the end-to-end tests run the collector unprivileged)
#     tmux: cmd/nettop's test drives its full-screen view in a tmux pane (send-keys, capture-pane)
#     ca-certificates: the CA bundle the container image carries (scripts/image-context.sh)
#     gcc, libc6-dev: cgo, which `go test -race` (make test) needs
#     nginx-light, redis-server (redis-cli, redis-benchmark), postgresql (initdb, postgres, psql),
#     mariadb-server and mariadb-client, rabbitmq-server, dnsmasq-base, bind9-dnsutils (dig), curl:
#       the real servers and clients of the protocol-classification end-to-end test (distrotest);
#       the test starts and stops them itself, so none is left running as a service (see below)
#   scripts/ci/deps.sh bench  make bench: bpftrace (the suite's bpftrace arm runs bench/bpftrace/bytes.bt)
# Go is not a Debian package here (Debian's is too old): the build and tests need it on PATH, at
# least the version go.mod names, and fail here otherwise. (The bench set runs under sudo, which
# may drop Go from PATH; make bench has run Go by then.)
set -euo pipefail
cd "$(dirname "$0")/../.."

die() {
	echo "deps.sh: $*" >&2
	exit 1
}

case "${1:-}" in
"")
	pkgs=(clang-19 llvm-19 libbpf-dev bpftool iproute2 nftables util-linux make git gcc libc6-dev
		nginx-light redis-server redis-tools postgresql mariadb-server mariadb-client rabbitmq-server
		dnsmasq-base bind9-dnsutils curl conntrack podman runc tmux ca-certificates)
	;;
bench) pkgs=(bpftrace) ;;
*) die "unknown package set '$1' (none: build and tests; bench: make bench)" ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Waits for another apt (another job on the same machine) instead of failing at once.
	apt=(apt-get -o DPkg::Lock::Timeout=600 -qq)
	"${apt[@]}" update || die "apt-get update failed (installing ${missing[*]})"
	# The servers' packages start their system services on install unless policy-rc.d says no:
	# the tests run their own instances on ports they choose, and a service on 80, 5432, 3306,
	# 5672 or 6379 would only be in the way. An image that has its own policy-rc.d keeps it.
	policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	rc=0
	"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[[ -z $policy ]] || rm -f "$policy"
	((rc == 0)) || die "apt-get install ${missing[*]} failed"
fi

case "${1:-}" in
"")
	# Go: go.mod's `go` line is the one place the required version is written.
	want=$(awk '$1 == "go" { print $2; exit }' go.mod)
	[[ -n $want ]] || die "no go line in go.mod"
	command -v go >/dev/null || die "Go $want or newer is required (go.mod) and no go is on PATH: install it from https://go.dev/dl/"
	have=$(go env GOVERSION) || die "go env GOVERSION failed: is Go $want or newer installed?"
	have=${have#go}
	have=${have%%[!0-9.]*} # drop a suffix such as "rc1" or "-X:..."
	[[ $(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1) == "$want" ]] ||
		die "Go $want or newer is required (go.mod); found go$have at $(command -v go)"
	echo "go: go$have (go.mod: $want)"
	# -race needs cgo: a C compiler that links, and CGO_ENABLED not turned off.
	probe=$(mktemp -d)
	trap 'rm -rf "$probe"' EXIT
	echo 'int main(void) { return 0; }' >"$probe/c.c"
	gcc -o "$probe/c" "$probe/c.c" 2>"$probe/err" || die "gcc cannot build a C program, and go test -race needs it: $(head -3 "$probe/err")"
	[[ $(go env CGO_ENABLED) == 1 ]] || die "CGO_ENABLED is $(go env CGO_ENABLED), and go test -race needs cgo: unset it or set CGO_ENABLED=1"
	echo "gcc: $(gcc --version | head -1)"
	echo "clang: $(clang-19 --version | head -1)"
	# The protocol end-to-end test's servers and clients (postgres and initdb live outside PATH,
	# under /usr/lib/postgresql/<major>/bin, where the test looks for them).
	for c in nginx redis-server redis-cli redis-benchmark psql mariadbd mariadb-install-db mariadb \
		rabbitmq-server epmd dnsmasq dig curl; do
		command -v "$c" >/dev/null || die "$c is missing although its package is installed"
	done
	compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || die "no /usr/lib/postgresql/*/bin/postgres"
	;;
bench)
	echo "bpftrace: $(bpftrace --version)"
	;;
esac
