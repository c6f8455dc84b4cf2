#!/bin/bash
# Installs what building and testing xdpsec needs on Debian 12, as root:
# the peers and checkers the tests run against (strongSwan with user-space
# ESP, tshark), lab tools (iproute2, ethtool, iperf3, trafgen, tcpdump) and
# clang/llvm for `make generate`; then checks each works as the tests use it
# (charon's plugins through scripts/check-strongswan.sh) and fails naming
# the package when not. Idempotent and quiet when all is there.
set -euo pipefail

pkgs=(
	python3 iproute2 iputils-ping iputils-tracepath ethtool iperf3 netsniff-ng tcpdump tshark util-linux
	strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
	python3-scapy nftables conntrack
	clang llvm libbpf-dev
	man-db groff-base systemd # the package's tests: man -l, systemd-analyze verify (setpriv: util-linux)
	systemd-container         # TestSystemdUnit boots a real systemd with systemd-nspawn
	bird2                     # TestClusterBGP: the upstream router of the cluster's L3 (BGP) mode
)

# --bench adds what only `make bench` needs: DPDK's ipsec-secgw example
# (source in dpdk-doc, built against libdpdk-dev by bench/dpdk/build.sh)
# and perf. About 220 packages with their dependencies (every DPDK driver
# library), so `make test` on a fresh machine does not pull them.
if [[ ${1:-} == --bench ]]; then
	pkgs+=(dpdk-doc libdpdk-dev build-essential pkg-config patch linux-perf)
fi

if ! command -v go >/dev/null; then
	echo "install-deps: Go 1.26 or later is required (the machines have it in /usr/local/go; put it on PATH)" >&2
	exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer no.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# strongSwan's packages must not start a charon of their own: tests run
# their charons in namespaces.
systemctl disable --now strongswan-starter strongswan 2>/dev/null || true
# Nor BIRD's: TestClusterBGP runs its own in a namespace.
systemctl disable --now bird 2>/dev/null || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

# Verify, not just install: a package can be installed and its tool still
# missing or unable to do what the tests ask (a machine that once had a
# package hides its absence from the list above). Each check runs the tool
# the way the suite needs it; a failure names the package.
broken=()
check() { # PACKAGE COMMAND...
	local pkg=$1
	shift
	"$@" >/dev/null 2>&1 || broken+=("$pkg (\`$*\` failed)")
}
check iproute2 ip -V
check iproute2 tc -V
check iputils-ping ping -V
check ethtool ethtool --version
check iperf3 iperf3 --version
check netsniff-ng sh -c 'trafgen -v | grep -q ^trafgen'
check tcpdump tcpdump --version
check util-linux nsenter --version
check util-linux unshare --version
check util-linux taskset --version
check util-linux flock --version
check util-linux setpriv --version
check man-db man --version
check groff-base groff --version
check systemd systemd-analyze --version
check systemd test -x /lib/systemd/systemd
check systemd-container systemd-nspawn --version
check python3-scapy /usr/bin/python3 -c 'import scapy.all'
check nftables nft --version
check clang sh -c 'clang -print-targets | grep -qw bpf'
check llvm llvm-strip --version
check libbpf-dev test -f /usr/include/bpf/bpf_helpers.h
check bird2 sh -c 'bird --version 2>&1 | grep -q "^BIRD version 2\." && command -v birdc'
if [[ ${1:-} == --bench ]]; then
	check dpdk-doc test -f /usr/share/dpdk/examples/ipsec-secgw/ipsec-secgw.c
	check libdpdk-dev pkg-config --exists libdpdk
	check linux-perf perf --version
fi
# tshark must know the ESP decryption preferences the tests set.
check tshark sh -c 'tshark -G defaultprefs | grep -q "esp.enable_encryption_decode"'
if ((${#broken[@]})); then
	printf 'install-deps: not usable: %s\n' "${broken[@]}" >&2
	echo "install-deps: reinstall those packages (apt-get install --reinstall PACKAGE)" >&2
	exit 1
fi
# charon, started the way the interop tests start it, must load every
# plugin they use (the check names the package that lacks).
if [[ $(id -u) -eq 0 ]]; then
	"$(dirname "$0")/check-strongswan.sh"
fi
