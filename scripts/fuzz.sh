#!/bin/bash
# Runs every Fuzz target in the tree, one after the other, for FUZZTIME
# each (default 30s), and prints each target's rate at the end. Targets
# are found by their `func FuzzX(f *testing.F)` lines, so a new one is run
# without being listed here. FUZZ selects targets by a regular expression
# over "package/FuzzName"; FUZZPARALLEL sets the workers per target
# (default: go's, one per CPU). Targets that need root (bpf) skip without
# it. A crasher is written under the package's testdata/fuzz and fails the
# run: commit it as a regression input once fixed.
set -uo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-30s}
# Each input that finds new coverage is minimized for at most this long
# (go test's default, 60s, let a slow target spend nearly all its time
# minimizing: FuzzReassembly ran 7 inputs a minute).
min=${FUZZMINIMIZETIME:-2s}
sel=${FUZZ:-.}
par=()
[[ -n ${FUZZPARALLEL:-} ]] && par=(-parallel "$FUZZPARALLEL")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail=0
summary=()
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	[[ "$pkg/$name" =~ $sel ]] || continue
	echo "== $pkg $name ($t)"
	corpus="$pkg/testdata/fuzz/$name"
	before=$(ls "$corpus" 2>/dev/null | wc -l)
	note=""
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" -fuzzminimizetime "$min" "${par[@]}" "$pkg" >"$log" 2>&1; then
		# Go 1.26's coordinator can report its own -fuzztime deadline as
		# a failure (golang/go#75804, fixed in 1.27): no input written,
		# "context deadline exceeded". Anything else is a real failure.
		if [[ $(ls "$corpus" 2>/dev/null | wc -l) -eq $before ]] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log"; then
			note=" (deadline race at the end, golang/go#75804: no failing input)"
		else
			fail=1
			tail -n 30 "$log"
			summary+=("$(printf '%-22s %-34s FAILED' "$pkg" "$name")")
			continue
		fi
	fi
	# The last progress line: "fuzz: elapsed: 30s, execs: 123456 (4115/sec), ..."
	line=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1)
	execs=$(sed -nE 's/.*execs: ([0-9]+) .*/\1/p' <<<"$line")
	secs=$(sed -nE 's/.*elapsed: ([0-9]+)s.*/\1/p' <<<"$line")
	rate=skipped
	if [[ -n $execs && -n $secs && $secs -gt 0 ]]; then
		rate="$((execs / secs))/s ($execs in ${secs}s)"
	elif grep -q -- '--- SKIP' "$log"; then
		rate="skipped: $(grep -m1 -A1 -- '--- SKIP' "$log" | tail -n 1 | sed 's/^ *//')"
	fi
	summary+=("$(printf '%-22s %-34s %s%s' "$pkg" "$name" "$rate" "$note")")
done < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . |
	sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]+).*#:\1#' | sort)
echo
echo "== execs per second (FUZZTIME=$t)"
printf '%s\n' "${summary[@]}"
exit $fail
