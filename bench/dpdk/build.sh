#!/bin/bash
# Builds DPDK's ipsec-secgw example (Debian 12's dpdk-doc 22.11 ships its
# source, libdpdk-dev the libraries) for the lab's "dpdk" mode
# (scripts/bench-lab.sh): a copy of the example goes to OUT (default
# build/dpdk), bench/dpdk/*.patch are applied to the copy, and `make` builds
# OUT/ipsec-secgw/build/ipsec-secgw. DPDK's code is never committed here:
# only the patches are. Prints the binary's path.
#
# The patches (each small, each saying why):
#   rx-checksum.patch  the example demands RX checksum offload of every
#                      port; net_af_xdp on veth offers none, so it would
#                      refuse to start. It checks no checksum itself
#                      either way: nothing else changes.
#
# usage: build.sh [OUT]   (needs: scripts/install-deps.sh --bench)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/build/dpdk}
SRC=${DPDK_EXAMPLES:-/usr/share/dpdk/examples}
if [[ ! -f $SRC/ipsec-secgw/ipsec-secgw.c ]] || ! pkg-config --exists libdpdk; then
	echo "dpdk/build.sh: no DPDK example source or libdpdk: run scripts/install-deps.sh --bench (dpdk-doc, libdpdk-dev)" >&2
	exit 1
fi
ver=$(pkg-config --modversion libdpdk)
stamp="$ver $(cat "$HERE"/*.patch | sha256sum | cut -c1-16)"
bin=$OUT/ipsec-secgw/build/ipsec-secgw
# Rebuilt when DPDK or a patch changed, else reused (14 s on two cores).
if [[ -x $bin && -f $OUT/stamp && $(cat "$OUT/stamp") == "$stamp" ]]; then
	echo "$bin"
	exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT"
cp -r "$SRC/ipsec-secgw" "$SRC/common" "$OUT/"
for p in "$HERE"/*.patch; do
	patch -s -p1 -d "$OUT/ipsec-secgw" <"$p"
done
make -s -C "$OUT/ipsec-secgw" shared >"$OUT/make.log" 2>&1 || {
	cat "$OUT/make.log" >&2
	exit 1
}
echo "$stamp" >"$OUT/stamp"
echo "$bin"
