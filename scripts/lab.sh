#!/bin/bash
# The xdpsec namespace lab:
#
#   hostA ──(lan)── gwA ══ wan ══ gwB ──(lan)── hostB
#
#   hostA  eth0  198.18.1.2/24  2001:db8:a::2/64   default via gwA
#   gwA    lan0  198.18.1.1/24  2001:db8:a::1/64
#          wan0  192.0.2.1/24   2001:db8:f::1/64   (MTU LAB_WAN_MTU, 1600: room for ESP)
#   gwB    wan0  192.0.2.2/24   2001:db8:f::2/64
#          lan0  198.18.2.1/24  2001:db8:b::1/64
#   hostB  eth0  198.18.2.2/24  2001:db8:b::2/64   default via gwB
#   wan    br0 bridging a0 (to gwA) and b0 (to gwB): the WAN "wire". Capture
#          here (tcpdump -i a0 sees all of gwA's WAN traffic): frames an AF_XDP socket sends or an XDP
#          program redirects never reach the gateways' own packet taps.
#
# usage: lab.sh up [PREFIX [onearm|nat|trunk]] | down|status [PREFIX]
#        lab.sh exec PREFIX NODE CMD...   (NODE: hA gA gB hB wan)
#
# LAB_QUEUES=N (default 1) gives every veth N receive and transmit queues,
# for gateways that serve several queues (interfaces.queues: N).
#
# LAB_WAN_MTU=N (default 1600) is the MTU of the WAN (the gateways' wan0,
# the bridge and its ports); the LANs stay at 1500. 1600 leaves room for
# ESP around a 1500-byte packet; 1500 (or less) is what real sites have,
# and makes the gateways answer "too big" or fragment (the MTU tests).
#
# "onearm" puts gwB in one-arm mode: no lan0; hostB hangs off the WAN
# bridge (port h0, MTU LAB_WAN_MTU) and gwB's wan0 also holds 198.18.2.1/24 and
# 2001:db8:b::1/64, so hostB's traffic and the ESP share one interface.
#
# "trunk" puts gwA on one port for both sides: no lan0; hostA hangs off
# the WAN bridge (port ha0; its own eth0 at 1500) and gwA's wan0 also holds
# 198.18.1.1/24 and 2001:db8:a::1/64, as a trunk carrying site A's LAN and
# the WAN (the VLAN tags are the test's to add: this kernel has no 802.1Q
# devices; see test/e2e/vlan_test.go TestVLANTrunk).
#
# "nat" puts gwA behind a NAT: the WAN namespace routes instead of bridging
# and masquerades gwA (192.0.2.1, on a0) as 192.0.2.253 (on b0, gwB's side)
# with nftables, a random source port per new mapping, and UDP mappings
# forgotten after NAT_UDP_TIMEOUT seconds (default 3) without a packet.
# a0 answers gwA's ARP for gwB by proxy, so gwA's addresses stay as above;
# gwB must expect its peer at 192.0.2.253. `conntrack -F` in PREFIX-wan
# makes the NAT forget every mapping at once.
#
# Every name carries PREFIX (default "xl"), so several labs (tests, the
# demo) can run side by side; `down PREFIX` removes exactly that lab.
# Namespaces are PREFIX-hA, PREFIX-gA, PREFIX-gB, PREFIX-hB, PREFIX-wan. Interfaces are
# created straight inside their namespaces, so they never collide.
#
# Fail closed: the gateways forward (ip_forward on, for BYPASS traffic), but
# the other site's protected prefixes are "unreachable" routes there, so the
# kernel can never carry that traffic in clear: only xdpsec, taking it at
# XDP, can move it - sealed. While xdpsec runs (or has died with its program
# pinned) the LAN program drops PROTECT traffic it cannot hand to a socket.
#
# Run xdpsec in a gateway with `lab.sh exec PREFIX gA xdpsec run -c ...`:
# it uses nsenter --net, which keeps /sys/fs/bpf (ip netns exec remounts
# /sys and hides the bpf filesystem the pins live on).
set -euo pipefail

cmd=${1:-}
P=${2:-xl}
VARIANT=${3:-}
Q=${LAB_QUEUES:-1}
WMTU=${LAB_WAN_MTU:-1600}
if [[ ! $WMTU =~ ^[0-9]{3,4}$ ]] || ((WMTU < 1280 || WMTU > 9000)); then
	echo "lab.sh: LAB_WAN_MTU must be 1280..9000" >&2
	exit 2
fi
if [[ ! $Q =~ ^[1-9][0-9]?$ ]]; then
	echo "lab.sh: LAB_QUEUES must be 1..99" >&2
	exit 2
fi
if [[ ! $P =~ ^[A-Za-z0-9]{1,8}$ ]]; then
	echo "lab.sh: prefix must be 1-8 letters or digits" >&2
	exit 2
fi
hA=$P-hA gA=$P-gA gB=$P-gB hB=$P-hB wan=$P-wan
NODES=("$hA" "$gA" "$gB" "$hB" "$wan")

inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# veth NAME NS PEER PEERNS: a veth pair straight into two namespaces.
veth() {
	ip link add "$1" numtxqueues "$Q" numrxqueues "$Q" netns "$2" type veth \
		peer name "$3" numtxqueues "$Q" numrxqueues "$Q" netns "$4"
}

up() {
	for ns in "${NODES[@]}"; do
		if ip netns list | grep -qw "^$ns"; then
			echo "lab.sh: $ns exists; run: lab.sh down $P" >&2
			exit 1
		fi
	done
	for ns in "${NODES[@]}"; do
		ip netns add "$ns"
		inns "$ns" ip link set lo up
		# No DAD: addresses are usable at once, and these links are ours.
		inns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done
	if [[ $VARIANT != trunk ]]; then
		veth eth0 "$hA" lan0 "$gA"
	fi
	veth wan0 "$gA" a0 "$wan"
	veth wan0 "$gB" b0 "$wan"
	ports=(a0 b0)
	if [[ $VARIANT == trunk ]]; then
		veth eth0 "$hA" ha0 "$wan" # hostA's MTU stays 1500, a LAN's
		ports+=(ha0)
	fi
	if [[ $VARIANT == onearm ]]; then
		veth eth0 "$hB" h0 "$wan"
		inns "$hB" ip link set eth0 mtu "$WMTU"
		ports+=(h0)
	else
		veth lan0 "$gB" eth0 "$hB"
	fi
	inns "$wan" ip link add br0 type bridge stp_state 0
	inns "$wan" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	for port in "${ports[@]}"; do
		inns "$wan" ip link set "$port" mtu "$WMTU" master br0
		inns "$wan" ethtool -K "$port" tx off >/dev/null
		inns "$wan" ip link set "$port" up
	done
	inns "$wan" ip link set br0 mtu "$WMTU" up
	inns "$gA" ip link set wan0 mtu "$WMTU"
	inns "$gB" ip link set wan0 mtu "$WMTU"
	if [[ $VARIANT == nat ]]; then
		nat
	fi

	addr() { # ns dev v4 v6
		inns "$1" ip addr add "$3" dev "$2"
		inns "$1" ip -6 addr add "$4" dev "$2" nodad
		# Checksums must be finished before a frame can reach an AF_XDP
		# socket (see /work/shared/PEERS.md): no TX offload on any veth.
		inns "$1" ethtool -K "$2" tx off >/dev/null
		inns "$1" ip link set "$2" up
	}
	addr "$hA" eth0 198.18.1.2/24 2001:db8:a::2/64
	addr "$gA" wan0 192.0.2.1/24 2001:db8:f::1/64
	if [[ $VARIANT == trunk ]]; then
		inns "$gA" ip addr add 198.18.1.1/24 dev wan0
		inns "$gA" ip -6 addr add 2001:db8:a::1/64 dev wan0 nodad
	else
		addr "$gA" lan0 198.18.1.1/24 2001:db8:a::1/64
	fi
	addr "$gB" wan0 192.0.2.2/24 2001:db8:f::2/64
	if [[ $VARIANT == onearm ]]; then
		inns "$gB" ip addr add 198.18.2.1/24 dev wan0
		inns "$gB" ip -6 addr add 2001:db8:b::1/64 dev wan0 nodad
	else
		addr "$gB" lan0 198.18.2.1/24 2001:db8:b::1/64
	fi
	addr "$hB" eth0 198.18.2.2/24 2001:db8:b::2/64

	inns "$hA" ip route add default via 198.18.1.1
	inns "$hA" ip -6 route add default via 2001:db8:a::1
	inns "$hB" ip route add default via 198.18.2.1
	inns "$hB" ip -6 route add default via 2001:db8:b::1
	for g in "$gA" "$gB"; do
		inns "$g" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	done
	# The kernel never routes the other site's traffic: fail closed.
	inns "$gA" ip route add unreachable 198.18.2.0/24
	inns "$gA" ip -6 route add unreachable 2001:db8:b::/64
	inns "$gB" ip route add unreachable 198.18.1.0/24
	inns "$gB" ip -6 route add unreachable 2001:db8:a::/64
	# Learn the neighbours now so the first packets need not wait for
	# resolution (the gateways' next-hop tables would solicit anyway).
	inns "$hA" ping -c1 -W1 -q 198.18.1.1 >/dev/null || true
	inns "$hB" ping -c1 -W1 -q 198.18.2.1 >/dev/null || true
	inns "$gA" ping -c1 -W1 -q 192.0.2.2 >/dev/null || true
	inns "$hA" ping -6 -c1 -W1 -q 2001:db8:a::1 >/dev/null || true
	inns "$hB" ping -6 -c1 -W1 -q 2001:db8:b::1 >/dev/null || true
	inns "$gA" ping -6 -c1 -W1 -q 2001:db8:f::2 >/dev/null || true
	echo "lab $P up${VARIANT:+ ($VARIANT)}, WAN MTU $WMTU: ${NODES[*]}"
}

# nat turns the WAN namespace from a bridge into a masquerading router.
nat() {
	local to=${NAT_UDP_TIMEOUT:-3}
	inns "$wan" ip link set a0 nomaster
	inns "$wan" ip link set b0 nomaster
	inns "$wan" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.a0.rp_filter=0 net.ipv4.conf.b0.rp_filter=0 \
		net.ipv4.conf.a0.proxy_arp=1
	inns "$wan" ip addr add 192.0.2.254/32 dev a0
	inns "$wan" ip addr add 192.0.2.253/24 dev b0
	inns "$wan" ip route add 192.0.2.1/32 dev a0
	inns "$wan" nft -f - <<NFT
table ip nat {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "b0" masquerade fully-random
	}
}
NFT
	# Per namespace; "stream" is a mapping that saw both directions.
	inns "$wan" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="$to" \
		net.netfilter.nf_conntrack_udp_timeout_stream="$to"
}

down() {
	local rc=0
	for ns in "${NODES[@]}"; do
		if ip netns list | grep -qw "^$ns"; then
			# Deleting the namespace deletes its veths and, with them,
			# their XDP programs; pinned maps are the daemon's to remove.
			ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
			ip netns del "$ns" || rc=1
		fi
	done
	echo "lab $P down"
	return $rc
}

status() {
	for ns in "${NODES[@]}"; do
		if ! ip netns list | grep -qw "^$ns"; then
			echo "$ns: absent"
			continue
		fi
		echo "== $ns"
		inns "$ns" ip -brief addr show | grep -v '^lo'
		inns "$ns" ip -details link show | grep -o 'prog/xdp id [0-9]*' | sed 's/^/   xdp: /' || true
	done
}

case $cmd in
up)
	if [[ -n $VARIANT && $VARIANT != onearm && $VARIANT != nat && $VARIANT != trunk ]]; then
		echo "lab.sh: unknown variant $VARIANT (onearm, nat, trunk)" >&2
		exit 2
	fi
	up
	;;
down) down ;;
status) status ;;
exec)
	node=${3:?node: hA gA gB hB wan}
	shift 3
	exec nsenter --net="/run/netns/$P-$node" "$@"
	;;
*)
	echo "usage: lab.sh up|down|status [PREFIX] | exec PREFIX NODE CMD..." >&2
	exit 2
	;;
esac
