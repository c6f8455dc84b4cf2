#!/bin/bash
# The demo (make demo): first the data plane's self test (every suite,
# in memory), then the real thing: a namespace lab with two xdpsec
# gateways over AF_XDP, ping and iperf3 through the tunnel, and both
# gateways' `xdpsec show sa`. Everything it builds it tears down.
set -euo pipefail
cd "$(dirname "$0")/.."
./bin/xdpsec version
./bin/xdpsec selftest -packets 5000
if [[ $(id -u) -ne 0 ]]; then
	echo "demo: the gateway lab needs root (network namespaces, XDP); run make demo as root" >&2
	exit 1
fi
XDPSEC=$PWD/bin/xdpsec ./scripts/demo-lab.sh "${1:-esp}"
