#!/bin/bash
# Writes the two gateways' configurations for the lab (scripts/lab.sh) into
# DIR: gw-a.yaml and gw-b.yaml, a matching pair of static SAs each way with
# fresh random AES-GCM keys, ESP (esp) or ESP-in-UDP (udp).
#
# usage: gen-config.sh PREFIX DIR [esp|udp] [suite]
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
P=${1:?prefix}
DIR=${2:?output directory}
ENCAP=${3:-esp}
SUITE=${4:-aes128gcm16}
case $SUITE in
aes128gcm*) klen=20 ;;
aes256gcm* | chacha20poly1305) klen=36 ;;
*) echo "gen-config.sh: suite $SUITE not supported here (AEAD suites only)" >&2; exit 2 ;;
esac
case $ENCAP in
esp) udp="" ;;
udp) udp="    udp_encap: {src: 4500, dst: 4500}" ;;
*) echo "gen-config.sh: encap is esp or udp" >&2; exit 2 ;;
esac
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
umask 077 # the files hold keys
key() { od -An -tx1 -N"$klen" /dev/urandom | tr -d ' \n'; }
KAB=$(key) KBA=$(key)

# gw NAME NODE LOCAL REMOTE OUTSPI INSPI OUTKEY INKEY LOCALV4 REMOTEV4 LOCALV6 REMOTEV6
gw() {
	lab_header gen-config.sh "$2"
	cat <<YAML
sas:
  - name: $1-out
    spi: $5
    dir: out
    local: $3
    remote: $4
    suite: $SUITE
    key: 0x$7
    esn: true
$udp
    selectors:
      - {src: $9, dst: ${10}}
      - {src: ${11}, dst: ${12}}
  - name: $1-in
    spi: $6
    dir: in
    local: $3
    remote: $4
    suite: $SUITE
    key: 0x$8
    esn: true
    replay_window: 4096
$udp
    selectors:
      - {src: ${10}, dst: $9}
      - {src: ${12}, dst: ${11}}
policies:
  - {name: to-peer-v4, src: $9, dst: ${10}, action: protect, sa: $1-out}
  - {name: to-peer-v6, src: ${11}, dst: ${12}, action: protect, sa: $1-out}
YAML
}
gw a gA 192.0.2.1 192.0.2.2 0x1001 0x2001 "$KAB" "$KBA" 198.18.1.0/24 198.18.2.0/24 2001:db8:a::/64 2001:db8:b::/64 >"$DIR/gw-a.yaml"
gw b gB 192.0.2.2 192.0.2.1 0x2001 0x1001 "$KBA" "$KAB" 198.18.2.0/24 198.18.1.0/24 2001:db8:b::/64 2001:db8:a::/64 >"$DIR/gw-b.yaml"
echo "$DIR/gw-a.yaml $DIR/gw-b.yaml"
