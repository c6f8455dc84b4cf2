#!/bin/bash
# Checks that the committed XDP object and its Go bindings
# (bpf/xdpsec_bpfel.{o,go}) are what bpf/xdpsec.c compiles to: regenerates
# them with `go generate ./bpf` (bpf2go, clang, llvm-strip; the same
# command `make generate` runs) and compares byte for byte. clang's output
# is deterministic here (bpf2go maps the source directory out of the debug
# info, so the path of the checkout does not matter), so any difference is
# a source changed without regenerating, or the reverse. On a mismatch the
# regenerated files are left in the work tree: commit them with the source.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

for tool in clang llvm-strip; do
	if ! command -v "$tool" >/dev/null; then
		echo "check-bpf: $tool is not installed (make deps installs clang and llvm)" >&2
		exit 1
	fi
done

gen=(bpf/*_bpfel.o bpf/*_bpfel.go)
saved=$(mktemp -d)
trap 'rm -rf "$saved"' EXIT
cp -p "${gen[@]}" "$saved/"
$GO generate ./bpf

differ=()
for f in "${gen[@]}"; do
	cmp -s "$f" "$saved/$(basename "$f")" || differ+=("$f")
done
# A generated file the tree did not have (a new program, a new target).
for f in bpf/*_bpfel.o bpf/*_bpfel.go; do
	[[ -e "$saved/$(basename "$f")" ]] || differ+=("$f (new)")
done
if ((${#differ[@]})); then
	echo "check-bpf: bpf/xdpsec.c does not compile to the committed files: ${differ[*]}" >&2
	echo "check-bpf: the regenerated files are in the work tree now; commit them with the source" >&2
	exit 1
fi
echo "check-bpf: ${gen[*]} match bpf/xdpsec.c"
