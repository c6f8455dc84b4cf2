#!/bin/bash
# The gateway demo: a namespace lab (scripts/lab.sh), two xdpsec gateways
# with static SAs and fresh random keys, ping both ways over IPv4 and IPv6,
# a short iperf3 through the tunnel, and `xdpsec show sa` from both sides.
# Everything is torn down on exit, whatever happens.
#
# usage: demo-lab.sh [esp|udp]     (as root; builds bin/xdpsec unless XDPSEC names a binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ENCAP=${1:-esp}
P="d$$"
P=${P:0:8}
BIN=${XDPSEC:-$PWD/bin/xdpsec}
[[ -n ${XDPSEC:-} ]] || go build -o "$BIN" ./cmd/xdpsec # always: a stale bin/xdpsec would measure old code
WORK=$(mktemp -d /tmp/xdpsec-demo.XXXXXX)
pids=()

cleanup() {
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	./scripts/lab.sh down "$P" >/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

lab() { ./scripts/lab.sh exec "$P" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lab $P up (hostA - gwA - wan - gwB - hostB)"
./scripts/lab.sh up "$P"
./scripts/lab/gen-config.sh "$P" "$WORK" "$ENCAP" >/dev/null

step "xdpsec on gwA and gwB ($ENCAP, fresh keys)"
for g in a b; do
	G=$(tr a-b A-B <<<"$g")
	"$BIN" run --check -c "$WORK/gw-$g.yaml"
	"$BIN" newkeys -c "$WORK/gw-$g.yaml" >/dev/null # gen-config.sh made them just now
	# Not through the lab function: $! must be xdpsec itself (lab.sh
	# execs nsenter, which execs xdpsec), so SIGTERM reaches it.
	./scripts/lab.sh exec "$P" "g$G" "$BIN" run -c "$WORK/gw-$g.yaml" 2>"$WORK/gw-$g.log" &
	pids+=($!)
done
for g in A B; do
	for _ in $(seq 50); do
		"$BIN" show sa --socket "/run/xdpsec/$P-g$G.sock" >/dev/null 2>&1 && break
		sleep 0.1
	done
done
grep -h 'xdp attached\|gateway up' "$WORK"/gw-*.log | cut -c1-160

step "ping hostA -> hostB and back, IPv4 and IPv6"
# The first packets to a new destination wait for the next-hop tables.
lab hA ping -q -c 2 -W 1 198.18.2.2 >/dev/null || true
lab hA ping -q -6 -c 2 -W 1 2001:db8:b::2 >/dev/null || true
lab hB ping -q -c 2 -W 1 198.18.1.2 >/dev/null || true
lab hB ping -q -6 -c 2 -W 1 2001:db8:a::2 >/dev/null || true
lab hA ping -c 3 -i 0.2 198.18.2.2
lab hA ping -6 -c 3 -i 0.2 2001:db8:b::2
lab hB ping -c 3 -i 0.2 198.18.1.2
lab hB ping -6 -c 3 -i 0.2 2001:db8:a::2

step "iperf3 TCP hostA -> hostB, 3 s"
./scripts/lab.sh exec "$P" hB iperf3 -s -1 -B 198.18.2.2 >/dev/null &
pids+=($!)
sleep 0.3
lab hA iperf3 -c 198.18.2.2 -t 3 | tail -4

step "xdpsec show sa (gwA)"
"$BIN" show sa --socket "/run/xdpsec/$P-gA.sock"
step "xdpsec show sa (gwB)"
"$BIN" show sa --socket "/run/xdpsec/$P-gB.sock"
step "xdpsec show policy (gwA)"
"$BIN" show policy --socket "/run/xdpsec/$P-gA.sock"

step "SIGTERM: the gateways detach and exit"
for pid in "${pids[@]:0:2}"; do kill -TERM "$pid"; wait "$pid" || true; done
pids=("${pids[@]:2}")
for g in gA gB; do
	if lab "$g" ip -d link show | grep -q 'prog/xdp'; then
		echo "$g: XDP still attached" >&2
		exit 1
	fi
done
echo "nothing left attached"
