#!/bin/bash
# Writes the two gateways' configurations for the lab (scripts/lab.sh) with
# IKEv2 connections instead of static SAs: DIR/gw-a.yaml (start_action
# start: gwA initiates), DIR/gw-b.yaml (start_action none: it waits) and
# DIR/psk, a fresh random pre-shared key both read through psk_file. With
# KEYLOG=1 both gateways write Wireshark key logs to DIR/keylog-a and
# DIR/keylog-b.
#
# usage: gen-ike-config.sh PREFIX DIR [IKE-PROPOSAL [ESP-PROPOSAL [START-A]]]
#   defaults: aes256gcm16-prfsha384-ecp384 aes128gcm16-x25519 start
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
P=${1:?prefix}
DIR=${2:?output directory}
IKEP=${3:-aes256gcm16-prfsha384-ecp384}
ESPP=${4:-aes128gcm16-x25519}
STARTA=${5:-start}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
umask 077 # the PSK file is a secret
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$DIR/psk"

# gw NAME NODE LOCAL REMOTE LOCALID REMOTEID START LOCALV4 REMOTEV4 LOCALV6 REMOTEV6
gw() {
	lab_header gen-ike-config.sh "$2"
	if [[ ${KEYLOG:-0} == 1 ]]; then
		echo "key_log: $DIR/keylog-$1"
	fi
	cat <<YAML
connections:
  - name: site
    local_addr: $3
    remote_addr: $4
    local_id: $5
    remote_id: $6
    auth: {psk_file: $DIR/psk}
    ike_proposals: [$IKEP]
    start_action: $7
    dpd_delay: 10s
    dpd_action: clear
    children:
      - name: net
        local_ts: [$8, ${10}]
        remote_ts: [$9, ${11}]
        mode: tunnel
        esp_proposals: [$ESPP]
YAML
}
gw a gA 192.0.2.1 192.0.2.2 gw-a.lab gw-b.lab "$STARTA" 198.18.1.0/24 198.18.2.0/24 2001:db8:a::/64 2001:db8:b::/64 >"$DIR/gw-a.yaml"
gw b gB 192.0.2.2 192.0.2.1 gw-b.lab gw-a.lab none 198.18.2.0/24 198.18.1.0/24 2001:db8:b::/64 2001:db8:a::/64 >"$DIR/gw-b.yaml"
echo "$DIR/gw-a.yaml $DIR/gw-b.yaml"
