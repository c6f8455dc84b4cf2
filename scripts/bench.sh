#!/bin/bash
# Micro-benchmarks of the data plane, each beside its bare-crypto baseline
# in the same run. Output in bench/out/; bench/RESULTS.md is written from it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
t=${BENCHTIME:-1s}
count=${BENCHCOUNT:-3}
go test -run '^$' -bench . -benchmem -benchtime "$t" -count "$count" ./fastpath ./fastpath/esp ./sad ./sad/spd ./sad/replay | tee bench/out/micro.txt
go run ./bench/cmd/benchtable < bench/out/micro.txt | tee bench/out/micro.md
# The packet generator against netsniff-ng's trafgen on one veth (root).
if [[ $(id -u) -eq 0 ]]; then
	go test -run '^$' -bench CompareTrafgen -benchtime 1x ./bench/gen | tee bench/out/trafgen.txt
fi
[[ $(id -u) -ne 0 ]] || ./scripts/bench-lab.sh # kernel forwarding vs xdpsec vs strongSwan in the lab (bench/out/lab.md)
