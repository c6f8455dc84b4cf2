#!/bin/bash
# A/B runs of xdpsec settings in the bench lab (issue 14's AF_XDP levers):
# each variant is one scripts/bench-lab.sh run (MODES=xdpsec), variants
# alternate, ROUNDS rounds, the lab lock taken per run only. Medians and
# ranges of the delivered pps per size, gwA's syscalls per packet
# (sendto + recvfrom + poll over the packets its sockets received) and
# both gateways' CPU time (user + system, the whole run) per packet gwA
# received, go to OUTDIR/ab.md; each run's lab.json and gateway stats stay in OUTDIR.
#
# usage: ab.sh OUTDIR 'NAME;IFACE;NAPI[;HUGEPAGES[;BINARY]]' ...   (root)
#   IFACE: interfaces keys for both gateways, e.g. "batch: 256, idle_spin: 50us"
#   NAPI:  "DEFER TIMEOUT" for the gateway veths' napi_defer_hard_irqs and
#          gro_flush_timeout (busy polling), or empty
#   HUGEPAGES: 2 MiB pages to add to vm.nr_hugepages for the run (the
#          UMEMs then come from them), restored after it
#   BINARY: an xdpsec binary to run instead of this tree's (e.g. one built
#          from another commit, to compare defaults)
# environment: ROUNDS=3 SIZES="64 1400" DURATION=3 LADDER_STEPS=1, and
# whatever scripts/bench-lab.sh reads.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?outdir}
shift
[[ $# -gt 0 ]] || { echo "ab.sh: no variants" >&2; exit 2; }
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-3}
export SIZES=${SIZES:-64 1400} DURATION=${DURATION:-3} LADDER_STEPS=${LADDER_STEPS:-1} MODES=xdpsec KEEP=1
go build -o "$OUT/xdpsec" ./cmd/xdpsec
export XDPSEC=$OUT/xdpsec
variants=("$@")
n=${#variants[@]}
for r in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		# Rotate the order each round, so no variant always runs first.
		v=${variants[$(((i + r) % n))]}
		IFS=';' read -r name iface napi huge bin <<<"$v"
		echo "ab: round $r $name" >&2
		log=$OUT/$name-$r.log
		nr=$(cat /proc/sys/vm/nr_hugepages)
		# shellcheck disable=SC2016 # expanded by the inner shell
		XDPSEC=${bin:-$OUT/xdpsec} XDPSEC_IFACE=$iface XDPSEC_NAPI=$napi flock /tmp/xdpsec-lab.lock sh -c '
			[ -z "$1" ] || echo $(($2 + $1)) >/proc/sys/vm/nr_hugepages
			./scripts/bench-lab.sh; rc=$?
			echo "$2" >/proc/sys/vm/nr_hugepages
			exit $rc' ab "$huge" "$nr" >/dev/null 2>"$log" || true
		cp bench/out/lab.json "$OUT/$name-$r.json" 2>/dev/null || true
		kept=$(sed -n 's/^bench-lab: kept //p' "$log" | tail -1)
		if [[ -n $kept && -d $kept ]]; then
			for G in A B; do cp "$kept/xdpsec-g$G.stats.json" "$OUT/$name-$r-g$G.stats.json" 2>/dev/null || true; done
			cp "$kept/xdpsec-cpu.ticks" "$OUT/$name-$r.ticks" 2>/dev/null || true
			rm -rf "$kept"
		fi
	done
done
python3 scripts/benchlab/ab.py "$OUT" "${variants[@]}" | tee "$OUT/ab.md"
