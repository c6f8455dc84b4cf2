#!/bin/bash
# The lab comparison of `make bench` (issue 3, item 8): one generator and
# one sink (bench/cmd/xdpgen, AF_XDP at both ends: tx on hostA's eth0, the
# sink on hostB's eth0) and one topology (scripts/lab.sh:
# hostA - gwA - wan - gwB - hostB), five ways in one run (issue 14):
#
#   kernel      plain kernel forwarding through gwA and gwB: routes only,
#               no IPsec and no XDP program on any gateway interface
#   dpdk        DPDK 22.11's ipsec-secgw example, AES-128-GCM tunnel,
#               static SAs, AF_XDP PMD (bench/dpdk/build.sh builds it;
#               scripts/install-deps.sh --bench installs DPDK; DPDK_LAYOUT,
#               DPDK_MEM in scripts/benchlab/modes.sh)
#   ceiling     xdpsec with the bench-only null transform
#               (bench_null_cipher, run --bench): the same gateways
#               without crypto, the lab's ceiling for an AF_XDP data plane
#   xdpsec      two xdpsec gateways, static SAs (scripts/lab/gen-config.sh,
#               aes128gcm16; raw ESP unless XDPSEC_ENCAP=udp)
#   strongswan  two strongSwan 5.9.8 charons, PSK, aes128gcm16, user-space
#               ESP (kernel-libipsec: this kernel has no ESP), which 5.9.8
#               always carries as ESP-in-UDP
#
# For each frame size (64 and 1400 B: the 60/1414-byte frames of issue 14) it sends flat out for
# DURATION seconds and takes the rate the sink counted as the delivered
# rate at saturation, then sends again at LOSS_FRACTION (default 0.5) of
# that rate and reports what went missing (should be nothing). Inside the
# best run, while traffic flows, it samples the gateways' CPU time (their
# processes' user + system, /proc/PID/stat, and their CPUs' softirq,
# /proc/stat): CPU per packet. ROUNDS rounds, each running every mode
# (in reverse order every other round), so ratios come from runs side by
# side and the table gives medians and ranges. The table goes to stdout
# and bench/out/lab.md, the numbers to bench/out/lab.json.
#
# usage: bench-lab.sh            (root; builds bin/xdpsec and xdpgen)
# environment:
#   MODES="kernel dpdk xdpsec strongswan ceiling"  SIZES="64 1400" (also 512,
#   imix)  ROUNDS=3  LAB_QUEUES=1 (N: N queues, xdpsec N workers per gateway)
#   LAB_LOCK=/tmp/xdpsec-lab.lock (flock'd per round; LAB_LOCK= for none)
#   SINK_QUEUE=0 the sink's queue on hostB (with LAB_QUEUES=2 one flow
#       arrives on one queue, not necessarily 0; CPU per packet counts
#       hostB's frames on every queue)
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
MODES=${MODES:-kernel dpdk xdpsec strongswan ceiling}
SIZES=${SIZES:-64 1400}
ROUNDS=${ROUNDS:-3}
LAB_LOCK=${LAB_LOCK-/tmp/xdpsec-lab.lock} # taken per round; empty: none
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
	case $m in kernel | dpdk | xdpsec | strongswan | ceiling) ;; *)
		echo "bench-lab.sh: unknown mode $m (kernel dpdk xdpsec strongswan ceiling)" >&2
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
nsha="" nshb=""

cleanup() {
	set +e
	stop_gateways
	stop_ns_pids
	rm -rf /var/run/dpdk/"$P"-*
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
if [[ " $MODES " == *" dpdk "* ]] && [[ -z ${DPDK_BIN:-} ]]; then
	if ! DPDK_BIN=$("$ROOT/bench/dpdk/build.sh"); then
		log "dpdk: cannot build ipsec-secgw (install DPDK: scripts/install-deps.sh --bench); leaving the mode out"
		MODES=$(tr ' ' '\n' <<<"$MODES" | grep -vx dpdk | tr '\n' ' ')
	fi
fi
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
	flat=$WORK/$mode-$size-r$round-flat.json
	loss=$WORK/$mode-$size-r$round-loss.json
	settle "$mode"
	xgen_cpu "$flat" "$DURATION" --size "$size"
	sat=$flat
	offered=$(python3 "$ROOT/scripts/benchlab/report.py" rate "$flat" 1.5)
	for _ in $(seq "$LADDER_STEPS"); do
		[[ $offered -gt 0 ]] || break
		f=$WORK/$mode-$size-r$round-at-$offered.json
		settle "$mode"
		xgen_cpu "$f" "$PROBE_DURATION" --size "$size" --rate "$offered"
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
	python3 "$ROOT/scripts/benchlab/report.py" record "$mode" "$size" "$sat" "$loss" "$rate" "$flat" "$round" >>"$results"
	python3 "$ROOT/scripts/benchlab/report.py" line "$mode" "$size" "$sat" "$loss" "$rate" "$flat" "$round" >&2
}

# settle MODE: nothing left in flight from the last run, restarting the
# gateways if they will not drain.
settle() {
	if ! drain; then
		log "$1: gwB still delivering 3 s after the last run; restarting the gateways"
		"reset_$1" || log "$1: restart failed"
	fi
}

# xgen_cpu OUT DUR ARGS...: xgen for DUR seconds into OUT, with the
# gateways' CPU counters and hostB's received frames sampled while the
# traffic flows (OUT.cpu0, OUT.cpu1; report.py cpuwindow: 0.3 s after
# hostA's first 2000 frames left, and DUR - 0.8 s later), by one process
# started before the run, at the generator's priority.
xgen_cpu() {
	local out=$1 dur=$2 xp sp cpus
	shift 2
	# The gateways' CPUs: with LAB_QUEUES=N, every worker's.
	cpus=$({ xdpsec_cpus "$GWA_CPU" && xdpsec_cpus "$GWB_CPU"; } | tr , '\n' | sort -u | tr '\n' ' ')
	nice -n "$BENCH_NICE" python3 "$ROOT/scripts/benchlab/report.py" cpuwindow "$out" "${pids[*]}" "$cpus" \
		"$nsha" "$nshb" "$dur" &
	sp=$!
	xgen "$@" --duration "${dur}s" >"$out" &
	xp=$!
	wait "$xp" || true
	wait "$sp" || true
}

# ns_pids: a process in hostA's and one in hostB's namespace, whose
# /proc/PID/net/dev the CPU sampler reads (nsha, nshb).
ns_pids() {
	ip netns exec "$P-hA" sleep infinity & # not through ns(): $! must be the sleep
	nsha=$!
	ip netns exec "$P-hB" sleep infinity &
	nshb=$!
	sleep 0.1 # until ip netns exec has entered them
}
stop_ns_pids() {
	kill "${nsha:-}" "${nshb:-}" 2>/dev/null || true
	wait "${nsha:-}" "${nshb:-}" 2>/dev/null || true
	nsha="" nshb=""
}

xgen() {
	# One process drives both sides, each on a locked thread in its
	# namespace and pinned; --idle lets packets still in the gateways
	# arrive before the sink stops.
	timeout $((DURATION + 20)) nice -n "$BENCH_NICE" "$GEN" run --tx-if eth0 --tx-netns "$P-hA" --rx-if eth0 --rx-netns "$P-hB" \
		--dst 198.18.2.2 --flows "$FLOWS" --tx-cpu "$GEN_CPU" --rx-cpu "$SINK_CPU" --rx-queue "${SINK_QUEUE:-0}" --idle 500ms \
		--progress=false -o json "$@" 2>>"$WORK/xdpgen.log"
}

start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
order=()
for round in $(seq "$ROUNDS"); do
	# Every other round the other way round, so that no mode always
	# follows the same one (or a quiet spell of the neighbours).
	modes=$MODES
	((round % 2 == 1)) || modes=$(tr ' ' '\n' <<<"$MODES" | tac | tr '\n' ' ')
	order+=("$(echo $modes)")
	# The lab lock of the tests (COMMON rules), per round: held for one
	# round's minutes, not the whole run's.
	if [[ -n $LAB_LOCK ]]; then
		exec {lockfd}>"$LAB_LOCK"
		flock "$lockfd"
	fi
	for mode in $modes; do
		log "round $round/$ROUNDS, mode $mode: lab $P up"
		"$ROOT/scripts/lab.sh" up "$P" >/dev/null
		ns_pids
		for l in "hA eth0" "gA lan0" "gB lan0" "hB eth0"; do
			read -r n d <<<"$l"
			ns "$n" ip link set "$d" mtu "$LAN_MTU"
		done
		if ! "setup_$mode" || ! warm_up; then
			log "mode $mode: hostA cannot reach hostB; skipping it"
			for size in $SIZES; do
				python3 "$ROOT/scripts/benchlab/report.py" record "$mode" "$size" /dev/null /dev/null 0 /dev/null "$round" >>"$results"
			done
		else
			for size in $SIZES; do measure "$mode" "$size"; done
		fi
		"after_$mode"
		stop_gateways
		stop_ns_pids
		rm -rf /var/run/dpdk/"$P"-* # DPDK's runtime directories (telemetry sockets)
		"$ROOT/scripts/lab.sh" down "$P" >/dev/null
	done
	if [[ -n $LAB_LOCK ]]; then
		exec {lockfd}>&-
	fi
done
elapsed=$(($(date +%s) - start))

mkdir -p bench/out
rps="kernel mode: the gateways' receive processing (RPS of gwA lan0, gwB wan0) on CPUs $GWA_CPU/$GWB_CPU"
[[ $KERNEL_RPS == yes ]] || rps="kernel mode: no RPS, so kernel forwarding runs in softirq on the sending CPU"
dpdk_desc="layout ${DPDK_LAYOUT:-shared}, EAL ${DPDK_MEM:-}, nice ${DPDK_NICE:-}"
pinning="generator TX thread on CPU $GEN_CPU, sink RX thread on CPU $SINK_CPU; gwA on CPU $GWA_CPU, gwB on CPU $GWB_CPU \
(xdpsec and ceiling: interfaces.cpus, LAB_QUEUES=${LAB_QUEUES:-1} queue(s) and worker(s) per gateway; DPDK: its lcore; strongSwan: charon under taskset; $rps). A veth runs its peer's XDP and AF_XDP \
redirect on the CPU that transmits, so the hostA->gwA hop is charged to the generator's CPU in every mode; \
with 2 cores the generator and sink compete with the gateways. Generator, sink and user-space gateways at nice $BENCH_NICE."
python3 "$ROOT/scripts/benchlab/report.py" table "$results" bench/out/lab.json \
	--pinning "$pinning" --duration "$DURATION" --probe-duration "$PROBE_DURATION" --loss-fraction "$LOSS_FRACTION" --flows "$FLOWS" \
	--encap "$XDPSEC_ENCAP" --lan-mtu "$LAN_MTU" --elapsed "$elapsed" --cpus "$(nproc)" \
	--kernel "$(uname -r)" --load "$load_before" --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--order "$(IFS='; ' && echo "${order[*]}")" --dpdk "$dpdk_desc" | tee bench/out/lab.md
