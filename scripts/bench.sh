#!/bin/bash
# Micro-benchmarks of the data plane, each beside its bare-crypto baseline
# in the same run. Output in bench/out/; bench/RESULTS.md is written from it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
t=${BENCHTIME:-1s}
go test -run '^$' -bench . -benchmem -benchtime "$t" ./fastpath ./fastpath/esp ./sad ./sad/spd ./sad/replay | tee bench/out/micro.txt
