#!/bin/bash
# capture.sh — reproduce the strongSwan IKEv2 captures in this directory.
#
# Two charons (strongSwan 5.9.8, Debian 12 packages) run in two network
# namespaces joined by a veth pair on 198.18.0.0/24. Each charon has its own
# STRONGSWAN_CONF, VICI socket and private /run (5.9.8 writes
# /var/run/charon.pid whatever it is told). For each scenario the initiator
# brings an IKE SA up, then tears it down, while tcpdump records UDP 500/4500
# in the initiator's namespace. The IKE datagrams are then cut out of the pcap
# (the 4-byte zero non-ESP marker on port 4500 is stripped; ESP and NAT-T
# keepalives are skipped) and written one file per datagram. The IKE SA keys
# the initiator logs (filelog ike = 4) go to keys.txt, so tests can open the
# SK/SKF payloads. These are throw-away lab keys; so is the PSK below.
#
# The initiator's fragment_size is 300, so its IKE_AUTH request goes out as
# RFC 7383 SKF fragments; everything else is unfragmented.
#
# Needs root, iproute2, tcpdump, tshark and the packages
#   strongswan-charon strongswan-swanctl libcharon-extra-plugins
#   libstrongswan-extra-plugins
# Usage: capture.sh [OUTDIR]   (default: the directory of this script)
#        KEEP=1 capture.sh      keeps the work directory (configs, logs, pcaps)
set -euo pipefail

OUT=$(realpath "${1:-$(dirname "$0")}")
WORK=$(mktemp -d /tmp/xdpsec-capture.XXXXXX)
NSI=xdpsec-cap-i
NSR=xdpsec-cap-r
ADDR_I=198.18.0.1
ADDR_R=198.18.0.2
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	ip netns del "$NSI" 2>/dev/null
	ip netns del "$NSR" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root" >&2; exit 1; }

ip netns add "$NSI"
ip netns add "$NSR"
ip link add veth-cap-i netns "$NSI" type veth peer veth-cap-r netns "$NSR"
ip -n "$NSI" addr add "$ADDR_I/24" dev veth-cap-i
ip -n "$NSR" addr add "$ADDR_R/24" dev veth-cap-r
for ns in "$NSI" "$NSR"; do
	ip -n "$ns" link set lo up
done
ip -n "$NSI" link set veth-cap-i up
# Protected subnets: kernel-libipsec routes them into its TUN device and needs
# a local address inside each side's own subnet as the route's source.
ip -n "$NSI" addr add 198.18.1.1/24 dev lo
ip -n "$NSR" addr add 198.18.2.1/24 dev lo
ip -n "$NSR" link set veth-cap-r up

# write_conf SIDE FRAGMENT_SIZE
write_conf() {
	local side=$1 frag=$2
	mkdir -p "$WORK/$side/run"
	cat >"$WORK/$side/strongswan.conf" <<CONF
charon {
	# kernel-libipsec before kernel-netlink: the kernel here has no ESP.
	load = random nonce aes sha1 sha2 hmac gcm curve25519 gmp openssl kdf x509 pubkey pem pkcs1 vici socket-default kernel-libipsec kernel-netlink
	send_vendor_id = yes
	fragment_size = $frag
	install_routes = no
	retransmit_tries = 2
	plugins {
		vici {
			socket = unix://$WORK/$side/charon.vici
		}
	}
	filelog {
		log {
			path = $WORK/$side/charon.log
			default = 1
			ike = 4
		}
	}
}
CONF
}

# The initiator fragments anything above 300 bytes (so its IKE_AUTH request
# goes out as RFC 7383 SKF fragments); the responder uses the default.
write_conf i 300
write_conf r 1280

cat >"$WORK/i/swanctl.conf" <<CONF
connections {
	gcm {
		local_addrs = $ADDR_I
		remote_addrs = $ADDR_R
		proposals = aes128gcm16-prfsha256-x25519
		local { auth = psk
			id = initiator.example }
		remote { auth = psk
			id = responder.example }
		children { gcm { local_ts = 198.18.1.0/24
			remote_ts = 198.18.2.0/24
			esp_proposals = aes128gcm16 } }
	}
	cbc {
		local_addrs = $ADDR_I
		remote_addrs = $ADDR_R
		proposals = aes256-sha256-modp2048
		local { auth = psk
			id = initiator.example }
		remote { auth = psk
			id = responder.example }
		children { cbc { local_ts = 198.18.1.0/24
			remote_ts = 198.18.2.0/24
			esp_proposals = aes256-sha256 } }
	}
	# Offers x25519 first; the responder only accepts modp2048 with
	# AES-CBC-256, so it answers INVALID_KE_PAYLOAD and the initiator retries.
	invalidke {
		local_addrs = $ADDR_I
		remote_addrs = $ADDR_R
		proposals = aes256-sha256-x25519-modp2048
		local { auth = psk
			id = initiator.example }
		remote { auth = psk
			id = responder.example }
		children { invalidke { local_ts = 198.18.1.0/24
			remote_ts = 198.18.2.0/24
			esp_proposals = aes256-sha256 } }
	}
}
secrets {
	ike-lab {
		id-i = initiator.example
		id-r = responder.example
		secret = "xdpsec capture lab key, not a secret"
	}
}
CONF

cat >"$WORK/r/swanctl.conf" <<CONF
connections {
	lab {
		local_addrs = $ADDR_R
		remote_addrs = $ADDR_I
		proposals = aes128gcm16-prfsha256-x25519, aes256-sha256-modp2048
		local { auth = psk
			id = responder.example }
		remote { auth = psk
			id = initiator.example }
		children { lab { local_ts = 198.18.2.0/24
			remote_ts = 198.18.1.0/24
			esp_proposals = aes128gcm16, aes256-sha256 } }
	}
}
secrets {
	ike-lab {
		id-i = initiator.example
		id-r = responder.example
		secret = "xdpsec capture lab key, not a secret"
	}
}
CONF

start_charon() {
	local side=$1 ns=$2
	STRONGSWAN_CONF="$WORK/$side/strongswan.conf" ip netns exec "$ns" \
		unshare --mount --propagation private \
		sh -c "mount --bind '$WORK/$side/run' /run && exec /usr/lib/ipsec/charon" \
		>"$WORK/$side/stdout" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do
		[ -S "$WORK/$side/charon.vici" ] && return 0
		sleep 0.1
	done
	echo "charon ($side) did not open its VICI socket" >&2
	cat "$WORK/$side/stdout" >&2
	return 1
}

swan() {
	local side=$1 ns=$2
	local cmd=$3
	shift 3
	# swanctl wants the command first, then its options.
	ip netns exec "$ns" swanctl "$cmd" --uri "unix://$WORK/$side/charon.vici" "$@"
}

start_charon i "$NSI"
start_charon r "$NSR"
swan i "$NSI" --load-all --file "$WORK/i/swanctl.conf" >/dev/null 2>&1
swan r "$NSR" --load-all --file "$WORK/r/swanctl.conf" >/dev/null 2>&1

# extract PCAP DIR: one file per IKE datagram, named
# NN-EXCHANGE-mMID-request|response.bin
extract() {
	local pcap=$1 dir=$2 n=0
	rm -rf "$dir"
	mkdir -p "$dir"
	tshark -r "$pcap" -T fields -e udp.srcport -e udp.dstport -e udp.payload 2>/dev/null |
		while read -r sport dport hex; do
			if [ "$sport" = 4500 ] || [ "$dport" = 4500 ]; then
				# Non-ESP marker: IKE; anything else is ESP or a keepalive.
				[ "${hex:0:8}" = 00000000 ] || continue
				hex=${hex:8}
			fi
			[ ${#hex} -ge 56 ] || continue
			local ex=$((16#${hex:36:2})) fl=$((16#${hex:38:2})) mid=$((16#${hex:40:8}))
			local exname
			case $ex in
			34) exname=ike_sa_init ;;
			35) exname=ike_auth ;;
			36) exname=create_child_sa ;;
			37) exname=informational ;;
			*) exname=exchange$ex ;;
			esac
			local dirn=request
			[ $((fl & 0x20)) = 0 ] || dirn=response
			n=$((n + 1))
			perl -e 'print pack("H*", $ARGV[0])' "$hex" \
				>"$dir/$(printf %02d "$n")-$exname-m$mid-$dirn.bin"
		done
}

# scenario NAME CONN
scenario() {
	local name=$1 conn=$2
	local pcap="$WORK/$name.pcap"
	local logoff
	logoff=$(stat -c %s "$WORK/i/charon.log")
	ip netns exec "$NSI" tcpdump -i veth-cap-i --immediate-mode -U -s 0 -w "$pcap" \
		'udp port 500 or udp port 4500' 2>"$WORK/$name.tcpdump" &
	local tpid=$!
	PIDS+=($tpid)
	sleep 1
	swan i "$NSI" --initiate --child "$conn" --timeout 10 >"$WORK/$name.initiate"
	swan i "$NSI" --terminate --ike "$conn" --timeout 10 >"$WORK/$name.terminate"
	# tcpdump drops what is still in its ring when it is killed: give it
	# time to drain (--immediate-mode delivers each packet at once).
	sleep 1
	kill "$tpid"
	wait "$tpid" 2>/dev/null || true
	extract "$pcap" "$OUT/$name"
	# The IKE SA keys, from the initiator's log of this scenario only
	# (filelog ike = 4 prints them as hex dumps), so tests can decrypt the
	# SK/SKF payloads with the AAD this package assembles.
	tail -c +$((logoff + 1)) "$WORK/i/charon.log" | perl -ne '
		if (/\] (Sk_(?:ai|ar|ei|er)) secret => (\d+) bytes/) {
			$k = lc $1; $want{$k} = $2; $hex{$k} = ""; push @order, $k; next;
		}
		if (defined $k && /\]\s+\d+: ([0-9A-F]{2}(?: [0-9A-F]{2}){0,15})/) {
			($h = $1) =~ s/ //g; $hex{$k} .= lc $h;
			undef $k if length($hex{$k}) >= 2 * $want{$k};
			next;
		}
		undef $k;
		END {
			print "# IKE SA keys of this lab run, logged by the initiator (charon filelog ike = 4).\n";
			print "$_ $hex{$_}\n" for @order;
		}' >"$OUT/$name/keys.txt"
	echo "$name: $(ls "$OUT/$name"/*.bin | wc -l) IKE datagrams"
}

scenario aes128gcm16-prfsha256-x25519 gcm
scenario aes256-sha256-modp2048 cbc
scenario invalid-ke-payload invalidke
