#!/bin/bash
# The lab comparison of `make bench` (issue 3, item 8): one generator and
# one sink (bench/cmd/xdpgen, AF_XDP at both ends: tx on hostA's eth0, the
# sink on hostB's eth0) and one topology (scripts/lab.sh:
# hostA - gwA - wan - gwB - hostB), three ways in one run:
#
#   kernel      plain kernel forwarding through gwA and gwB: routes only,
#               no IPsec and no XDP program on any gateway interface
#   xdpsec      two xdpsec gateways, static SAs (scripts/lab/gen-config.sh,
#               aes128gcm16; raw ESP unless XDPSEC_ENCAP=udp)
#   strongswan  two strongSwan 5.9.8 charons, PSK, aes128gcm16, user-space
#               ESP (kernel-libipsec: this kernel has no ESP), which 5.9.8
#               always carries as ESP-in-UDP
#
# For each frame size (64, 512, 1400 B, IMIX) it sends flat out for
# DURATION seconds and takes the rate the sink counted as the delivered
# rate at saturation, then sends again at LOSS_FRACTION (default 0.5) of
# that rate and reports what went missing (should be nothing). The table
# goes to stdout and bench/out/lab.md, the numbers to bench/out/lab.json.
#
# usage: bench-lab.sh            (root; builds bin/xdpsec and xdpgen)
# environment:
#   MODES="kernel xdpsec strongswan"  SIZES="64 512 1400 imix"
#   DURATION=3 (s, flat-out and loss runs)  PROBE_DURATION=2 (s, ladder
#   steps)  LADDER_STEPS=6  LOSS_FRACTION=0.5  FLOWS=1
#   GEN_CPU=0 SINK_CPU=0 GW_CPU=1      where the generator's TX thread,
#       the sink's RX thread and the gateways (xdpsec workers, charon, and
#       in kernel mode the gateways' receive processing via RPS) run
#   XDPSEC_ENCAP=esp|udp  LAN_MTU=1504  KERNEL_RPS=yes|no  BENCH_NICE=-10
#   KEEP=1 keeps the work directory (xdpgen summaries, gateway logs)
#
# With two cores the generator, the sink and the gateways share the
# machine, and the kernel's own veth work lands on whichever CPU sends:
# the pinning is printed with the table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ $(id -u) -ne 0 ]]; then
	echo "bench-lab.sh: needs root (namespaces, XDP)" >&2
	exit 1
fi
MODES=${MODES:-kernel xdpsec strongswan}
SIZES=${SIZES:-64 512 1400 imix}
DURATION=${DURATION:-3}
PROBE_DURATION=${PROBE_DURATION:-2}
LADDER_STEPS=${LADDER_STEPS:-6}
LOSS_FRACTION=${LOSS_FRACTION:-0.5}
FLOWS=${FLOWS:-1}
GEN_CPU=${GEN_CPU:-0}
SINK_CPU=${SINK_CPU:-0}
GW_CPU=${GW_CPU:-1}
GWA_CPU=${GWA_CPU:-$GW_CPU}
GWB_CPU=${GWB_CPU:-$GW_CPU}
KERNEL_RPS=${KERNEL_RPS:-yes}
# The generator, the sink and the user-space gateways run at this nice
# level: kernel forwarding runs in softirq, above every task, and on a
# shared box the others' jobs should not preempt one side only.
BENCH_NICE=${BENCH_NICE:--10}
XDPSEC_ENCAP=${XDPSEC_ENCAP:-esp}
# IMIX's big frame is 1518 B without FCS: a 1504-byte IP packet, which a
# 1500-byte LAN would refuse (the generator sets DF). Every LAN link gets
# room for it, in all three modes alike.
LAN_MTU=${LAN_MTU:-1504}
for m in $MODES; do
	case $m in kernel | xdpsec | strongswan) ;; *)
		echo "bench-lab.sh: unknown mode $m (kernel xdpsec strongswan)" >&2
		exit 2
		;;
	esac
done

P="bl$$"
P=${P:0:8}
WORK=$(mktemp -d /tmp/xdpsec-benchlab.XXXXXX)
BIN=${XDPSEC:-$ROOT/bin/xdpsec}
GEN=$WORK/xdpgen
pids=()

cleanup() {
	set +e
	stop_gateways
	"$ROOT/scripts/lab.sh" down "$P" >/dev/null 2>&1
	if [[ -n ${KEEP:-} ]]; then
		echo "bench-lab: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_gateways() {
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	pids=()
}

log() { echo "bench-lab: $*" >&2; }
ns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

[[ -n ${XDPSEC:-} ]] || go build -o "$BIN" ./cmd/xdpsec # always: a stale bin/xdpsec would measure old code
go build -o "$GEN" ./bench/cmd/xdpgen
# shellcheck source=benchlab/modes.sh
. "$ROOT/scripts/benchlab/modes.sh"

results=$WORK/results.jsonl
: >"$results"

# measure MODE SIZE: the delivered rate at saturation, then the loss run
# at a fraction of it. Saturation is the best of sending flat out and a
# ladder of offered rates (1.5 times the flat-out result, then 1.5 times
# the last step while the gateways keep up or still gain; report.py step):
# a user-space gateway flooded flat
# out can deliver far less than it carries at a rate it can nearly take
# (charon's queues grow without bound), and that collapse is not its
# capacity.
measure() {
	local mode=$1 size=$2 flat sat loss rate offered next f
	flat=$WORK/$mode-$size-flat.json
	loss=$WORK/$mode-$size-loss.json
	settle "$mode"
	xgen --size "$size" --duration "${DURATION}s" >"$flat" || true
	sat=$flat
	offered=$(python3 "$ROOT/scripts/benchlab/report.py" rate "$flat" 1.5)
	for _ in $(seq "$LADDER_STEPS"); do
		[[ $offered -gt 0 ]] || break
		f=$WORK/$mode-$size-at-$offered.json
		settle "$mode"
		xgen --size "$size" --duration "${PROBE_DURATION}s" --rate "$offered" >"$f" || true
		# prints: the better of the two files, and the next offered rate
		# (0 once the gateways fell behind).
		read -r sat next < <(python3 "$ROOT/scripts/benchlab/report.py" step "$sat" "$f" "$offered")
		offered=$next
	done
	rate=$(python3 "$ROOT/scripts/benchlab/report.py" rate "$sat" "$LOSS_FRACTION")
	if [[ $rate -gt 0 ]]; then
		settle "$mode"
		xgen --size "$size" --duration "${DURATION}s" --rate "$rate" >"$loss" || true
	else
		echo '{}' >"$loss"
	fi
	python3 "$ROOT/scripts/benchlab/report.py" record "$mode" "$size" "$sat" "$loss" "$rate" "$flat" >>"$results"
	python3 "$ROOT/scripts/benchlab/report.py" line "$mode" "$size" "$sat" "$loss" "$rate" "$flat" >&2
}

# settle MODE: nothing left in flight from the last run, restarting the
# gateways if they will not drain.
settle() {
	if ! drain; then
		log "$1: gwB still delivering 3 s after the last run; restarting the gateways"
		"reset_$1" || log "$1: restart failed"
	fi
}

xgen() {
	# One process drives both sides, each on a locked thread in its
	# namespace and pinned; --idle lets packets still in the gateways
	# arrive before the sink stops.
	timeout $((DURATION + 20)) nice -n "$BENCH_NICE" "$GEN" run --tx-if eth0 --tx-netns "$P-hA" --rx-if eth0 --rx-netns "$P-hB" \
		--dst 198.18.2.2 --flows "$FLOWS" --tx-cpu "$GEN_CPU" --rx-cpu "$SINK_CPU" --idle 500ms \
		--progress=false -o json "$@" 2>>"$WORK/xdpgen.log"
}

start=$(date +%s)
for mode in $MODES; do
	log "mode $mode: lab $P up"
	"$ROOT/scripts/lab.sh" up "$P" >/dev/null
	for l in "hA eth0" "gA lan0" "gB lan0" "hB eth0"; do
		read -r n d <<<"$l"
		ns "$n" ip link set "$d" mtu "$LAN_MTU"
	done
	"setup_$mode"
	if ! warm_up; then
		log "mode $mode: hostA cannot reach hostB; skipping it"
		for size in $SIZES; do
			python3 "$ROOT/scripts/benchlab/report.py" record "$mode" "$size" /dev/null /dev/null 0 /dev/null >>"$results"
		done
	else
		for size in $SIZES; do measure "$mode" "$size"; done
	fi
	"after_$mode"
	stop_gateways
	"$ROOT/scripts/lab.sh" down "$P" >/dev/null
done
elapsed=$(($(date +%s) - start))

mkdir -p bench/out
rps="kernel mode: the gateways' receive processing (RPS of gwA lan0, gwB wan0) on CPUs $GWA_CPU/$GWB_CPU"
[[ $KERNEL_RPS == yes ]] || rps="kernel mode: no RPS, so kernel forwarding runs in softirq on the sending CPU"
pinning="generator TX thread on CPU $GEN_CPU, sink RX thread on CPU $SINK_CPU; gwA on CPU $GWA_CPU, gwB on CPU $GWB_CPU \
(xdpsec: interfaces.cpus; strongSwan: charon under taskset; $rps). A veth runs its peer's XDP and AF_XDP \
redirect on the CPU that transmits, so the hostA->gwA hop is charged to the generator's CPU in every mode; \
with 2 cores the generator and sink compete with the gateways. Generator, sink and user-space gateways at nice $BENCH_NICE."
python3 "$ROOT/scripts/benchlab/report.py" table "$results" bench/out/lab.json \
	--pinning "$pinning" --duration "$DURATION" --probe-duration "$PROBE_DURATION" --loss-fraction "$LOSS_FRACTION" --flows "$FLOWS" \
	--encap "$XDPSEC_ENCAP" --lan-mtu "$LAN_MTU" --elapsed "$elapsed" --cpus "$(nproc)" \
	--kernel "$(uname -r)" --load "$(cut -d' ' -f1-3 /proc/loadavg)" | tee bench/out/lab.md
