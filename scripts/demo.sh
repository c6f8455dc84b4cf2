#!/bin/bash
# The demo: two gateways' data planes back to back, every suite, sample
# traffic, replay and forgery attempts, and the per-SA counters.
set -euo pipefail
cd "$(dirname "$0")/.."
./bin/xdpsec version
./bin/xdpsec selftest -packets 20000
