#!/bin/bash
# Installs what building and testing xdpsec needs on Debian 12, as root:
# the peers and checkers the tests run against (strongSwan with user-space
# ESP, tshark), lab tools (iproute2, ethtool, iperf3, trafgen, tcpdump) and
# clang/llvm for `make generate`. Idempotent and quiet when all is there.
set -euo pipefail

pkgs=(
	python3 iproute2 iputils-ping iputils-tracepath ethtool iperf3 netsniff-ng tcpdump tshark util-linux
	strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
	python3-scapy nftables
	clang llvm libbpf-dev
)

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
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
