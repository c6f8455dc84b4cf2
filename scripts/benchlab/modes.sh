# The three gateway set-ups of scripts/bench-lab.sh, sourced by it: each
# setup_MODE turns a fresh lab (scripts/lab.sh up) into that kind of
# gateway pair, and after_MODE keeps what is worth reading afterwards in
# $WORK. They use the caller's P, WORK, BIN, GWA_CPU, GWB_CPU, KERNEL_RPS,
# BENCH_NICE, LAN_MTU, XDPSEC_ENCAP, ns, log
# and the pids array (stop_gateways ends those processes).

# gw_rps NS DEV CPU: the receive processing of a gateway's veth goes to
# CPU. A veth hands a frame to its peer on the sending CPU; without RPS
# all of kernel forwarding runs on the generator's CPU (in its transmit
# call) while the gateways' CPU idles.
gw_rps() {
	local mask
	mask=$(printf '%x' $((1 << $3)))
	ns "$1" sh -c "for q in /sys/class/net/$2/queues/rx-*; do echo $mask > \$q/rps_cpus; done"
}

setup_kernel() {
	# lab.sh makes the other site "unreachable" on each gateway (fail
	# closed for xdpsec); plain forwarding needs the real routes.
	ns gA ip route replace 198.18.2.0/24 via 192.0.2.2
	ns gB ip route replace 198.18.1.0/24 via 192.0.2.1
	ns gA sysctl -qw net.ipv4.ip_forward=1
	ns gB sysctl -qw net.ipv4.ip_forward=1
	local g
	for g in gA gB; do
		if ns "$g" ip -d link show | grep -q 'prog/xdp'; then
			log "kernel mode: an XDP program is attached in $g"
			return 1
		fi
	done
	if [[ $KERNEL_RPS == yes ]]; then
		gw_rps gA lan0 "$GWA_CPU"
		gw_rps gB wan0 "$GWB_CPU"
	fi
}
after_kernel() { :; }

# xdpsec_cpus CPU: the CPUs of a gateway's workers, comma-separated: CPU
# for one queue; with LAB_QUEUES=N, CPU and the next ones round the box.
xdpsec_cpus() {
	local q=${LAB_QUEUES:-1} list=$1 c=$1 i
	for ((i = 1; i < q; i++)); do
		c=$(((c + 1) % $(nproc)))
		list+=",$c"
	done
	echo "$list"
}

setup_xdpsec() { xdpsec_gateways ""; }

# setup_ceiling: the lab's ceiling, xdpsec's gateways with the bench-only
# null transform (bench_null_cipher, allowed by run --bench): the same
# worker, XSKs and ESP framing, no encryption or authentication.
setup_ceiling() { xdpsec_gateways "--bench"; }
after_ceiling() { after_xdpsec; }
reset_ceiling() { stop_gateways && setup_ceiling && warm_up; }

# xdpsec_gateways FLAG: the two xdpsec daemons; with --bench, the ceiling.
xdpsec_gateways() {
	local g G cpu cpus q=${LAB_QUEUES:-1}
	"$ROOT/scripts/lab/gen-config.sh" "$P" "$WORK/xdpsec" "$XDPSEC_ENCAP" aes128gcm16 >/dev/null
	for g in a b; do
		G=$(tr a-b A-B <<<"$g")
		cpu=GW${G}_CPU
		cpu=${!cpu}
		cpus=$(xdpsec_cpus "$cpu")
		# One worker per queue, pinned (one queue: this gateway's CPU);
		# XDPSEC_IFACE adds interfaces keys (A/B runs of the AF_XDP
		# levers, e.g. "batch: 256, idle_spin: 50us, busy_poll: 50").
		sed -i "s/queues: 1,/queues: $q, cpus: [$cpus],${XDPSEC_IFACE:+ $XDPSEC_IFACE,}/" "$WORK/xdpsec/gw-$g.yaml"
		[[ -z $1 ]] || echo "bench_null_cipher: true" >>"$WORK/xdpsec/gw-$g.yaml"
		# shellcheck disable=SC2086 # $1: a flag or nothing
		"$BIN" run $1 --check -c "$WORK/xdpsec/gw-$g.yaml" >/dev/null
		# XDPSEC_NAPI="DEFER TIMEOUT": the gateway interfaces'
		# napi_defer_hard_irqs and gro_flush_timeout (ns), for busy polling.
		if [[ -n ${XDPSEC_NAPI:-} ]]; then
			ns "g$G" sh -c "for d in lan0 wan0; do echo ${XDPSEC_NAPI% *} >/sys/class/net/\$d/napi_defer_hard_irqs; echo ${XDPSEC_NAPI#* } >/sys/class/net/\$d/gro_flush_timeout; done"
		fi
		"$BIN" newkeys -c "$WORK/xdpsec/gw-$g.yaml" >/dev/null # fresh keys from gen-config.sh
		# lab.sh exec ends in exec: $! is the daemon, so SIGTERM reaches it.
		# shellcheck disable=SC2086 # $1: a flag or nothing
		nice -n "$BENCH_NICE" taskset -c "$cpus" "$ROOT/scripts/lab.sh" exec "$P" "g$G" "$BIN" run $1 -c "$WORK/xdpsec/gw-$g.yaml" \
			2>"$WORK/xdpsec-g$G.log" &
		pids+=($!)
	done
	for G in A B; do
		for _ in $(seq 50); do
			"$BIN" show sa --socket "/run/xdpsec/$P-g$G.sock" >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
}
after_xdpsec() {
	local G
	for G in A B; do
		"$BIN" show sa --socket "/run/xdpsec/$P-g$G.sock" >"$WORK/xdpsec-g$G.sa" 2>&1 || true
		"$BIN" show stats --socket "/run/xdpsec/$P-g$G.sock" >"$WORK/xdpsec-g$G.stats" 2>&1 || true
		"$BIN" show stats -o json --socket "/run/xdpsec/$P-g$G.sock" >"$WORK/xdpsec-g$G.stats.json" 2>/dev/null || true
	done
	# The gateways' CPU time over the whole run (utime and stime, fields
	# 14 and 15 of /proc/PID/stat, in clock ticks) for CPU per packet.
	local pid
	for pid in "${pids[@]}"; do
		cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null || true
	done >"$WORK/xdpsec-cpu.ticks"
}

# charon_conf NODE LOCAL REMOTE LOCALID REMOTEID LOCALNET REMOTENET PSK
charon_conf() {
	local d=$WORK/swan-$1
	mkdir -p "$d/run"
	cat >"$d/strongswan.conf" <<EOF
charon {
	# kernel-libipsec before kernel-netlink: ESP in user space, since this
	# kernel has none; it routes the protected prefixes into its TUN.
	# openssl first and no aes/gcm plugins: the first plugin to offer an
	# algorithm serves it, and only OpenSSL's AES-GCM uses AES-NI.
	load = openssl random nonce sha1 sha2 hmac curve25519 kdf pubkey pem pkcs1 vici socket-default kernel-libipsec kernel-netlink
	plugins {
		vici {
			socket = unix://$d/charon.vici
		}
	}
	filelog {
		log {
			path = $d/charon.log
			flush_line = yes
			default = 1
		}
	}
}
EOF
	cat >"$d/swanctl.conf" <<EOF
connections {
	bench {
		local_addrs = $2
		remote_addrs = $3
		proposals = aes128gcm16-prfsha256-x25519
		local {
			auth = psk
			id = $4
		}
		remote {
			auth = psk
			id = $5
		}
		children {
			bench {
				local_ts = $6
				remote_ts = $7
				esp_proposals = aes128gcm16
			}
		}
	}
}
secrets {
	ike-bench {
		id-a = $4
		id-b = $5
		secret = "$8"
	}
}
EOF
	chmod 600 "$d/swanctl.conf"
}

swanctl_in() { local n=$1; shift; ns "$n" swanctl "$@" --uri "unix://$WORK/swan-$n/charon.vici"; }

setup_strongswan() {
	local psk n cpu
	psk=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
	charon_conf gA 192.0.2.1 192.0.2.2 gwa.bench gwb.bench 198.18.1.0/24 198.18.2.0/24 "$psk"
	charon_conf gB 192.0.2.2 192.0.2.1 gwb.bench gwa.bench 198.18.2.0/24 198.18.1.0/24 "$psk"
	for n in gA gB; do
		rm -f "$WORK/swan-$n/charon.vici"
		cpu=GW${n:1}_CPU
		cpu=${!cpu}
		# Its own /run: 5.9.8 writes /var/run/charon.pid whatever it is told.
		STRONGSWAN_CONF=$WORK/swan-$n/strongswan.conf nice -n "$BENCH_NICE" taskset -c "$cpu" \
			ip netns exec "$P-$n" unshare --mount --propagation private \
			sh -c "mount --bind '$WORK/swan-$n/run' /run && exec /usr/lib/ipsec/charon" \
			>"$WORK/swan-$n/charon.stdout" 2>&1 &
		pids+=($!)
	done
	for n in gA gB; do
		# A restarted charon's socket path may still hold the old one's.
		for _ in $(seq 100); do
			swanctl_in "$n" --stats >/dev/null 2>&1 && break
			sleep 0.05
		done
		swanctl_in "$n" --load-all --file "$WORK/swan-$n/swanctl.conf" >"$WORK/swan-$n/load.log" 2>&1
	done
	swanctl_in gA --initiate --child bench --timeout 10 >/dev/null
	# The TUN carries the LAN's largest packet (IMIX's 1504 B) unfragmented.
	for n in gA gB; do
		ns "$n" ip link set ipsec0 mtu "$LAN_MTU" 2>/dev/null || true
	done
}
after_strongswan() {
	swanctl_in gA --list-sas >"$WORK/swan-gA.sas" 2>&1 || true
}

# warm_up: the first packets of a path wait for neighbour resolution (and
# xdpsec's next-hop tables); ping until hostB answers.
warm_up() {
	local i
	for i in $(seq 10); do
		if ns hA ping -c1 -W1 -q 198.18.2.2 >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

# gwb_lan_tx: the frames gwB has sent to hostB (its lan0, which DPDK's
# shared layout moves into gwA's namespace as lanB).
gwb_lan_tx() {
	if ns gB test -e /sys/class/net/lan0; then
		ns gB cat /sys/class/net/lan0/statistics/tx_packets
	else
		ns gA cat /sys/class/net/lanB/statistics/tx_packets
	fi
}

# drain: wait until gwB has stopped handing packets to hostB (a user-space
# gateway can hold many in its queues after a flat-out run; they must not
# arrive in the next measurement), at most 3 s; fails if it has not.
drain() {
	local last now
	last=$(gwb_lan_tx)
	for _ in $(seq 12); do
		sleep 0.25
		now=$(gwb_lan_tx)
		[[ $now == "$last" ]] && return 0
		last=$now
	done
	return 1
}

# reset_MODE: start a mode's gateways afresh, for when drain fails.
reset_kernel() { :; }
reset_xdpsec() { stop_gateways && setup_xdpsec && warm_up; }
# charon 5.9.8's kernel-libipsec queues what its TUN gives it without a
# bound: after seconds flat out it delivers its backlog for minutes.
reset_strongswan() { stop_gateways && setup_strongswan && warm_up; }

# --- dpdk: DPDK 22.11's ipsec-secgw example (bench/dpdk/build.sh) --------
# Static SAs: AES-128-GCM, IPv4 tunnel, the same addresses and selectors as
# xdpsec's; every port on the AF_XDP PMD (net_af_xdp, copy mode on veth,
# one queue); the crypto on Intel IPsec-MB (crypto_aesni_gcm).
# DPDK_LAYOUT=shared (default): one process, one lcore on GWA_CPU serving
#   both gateways (DPDK busy-polls: two processes sharing a CPU would spend
#   it spinning in turn): gwB's wan0 and lan0 move into gwA's namespace as
#   wanB and lanB; ports 0 lan0, 1 wan0, 2 wanB, 3 lanB, 1 and 2 unprotected.
# DPDK_LAYOUT=per-gateway: a process per gateway, each one lcore on its
#   gateway's CPU (GWA_CPU, GWB_CPU), ports 0 lan0 and 1 wan0.
# The PMD's XDP program takes every frame, ARP too, and ipsec-secgw answers
# none: the hosts get permanent neighbour entries for their gateways and
# secgw its next hops' MACs (neigh). Memory: DPDK_MEM (default "--no-huge
# -m 512": these boxes reserve no hugepages; "--in-memory" uses hugetlbfs
# where nr_hugepages > 0).
DPDK_MEM=${DPDK_MEM:---no-huge -m 512}
DPDK_LAYOUT=${DPDK_LAYOUT:-shared}
# Extra net_af_xdp arguments (e.g. ",busy_budget=0") and ipsec-secgw
# options (e.g. "-l": librte_ipsec) to try other settings.
DPDK_PMD_ARGS=${DPDK_PMD_ARGS:-}
# Its nice level, BENCH_NICE's like the other user-space gateways: the
# lcore busy-polls, and at 0 the neighbours' jobs took half its CPU
# (perf, 2026-12-07).
DPDK_NICE=${DPDK_NICE:-$BENCH_NICE}
DPDK_APP_ARGS=${DPDK_APP_ARGS:-}

mac_of() { ns "$1" cat "/sys/class/net/$2/address"; }

# dpdk_key: a 20-byte AES-128-GCM key + salt as secgw writes it (aa:bb:…).
dpdk_key() { od -An -tx1 -N20 /dev/urandom | tr -s ' \n' ' ' | sed 's/^ //; s/ $//; s/ /:/g'; }

# dpdk_sa SPI KEY SRC DST SRCNET DSTNET DIRS: one direction's SA and SP
# rules, for DIRS (out, in or "out in").
dpdk_sa() {
	local d
	for d in $7; do
		echo "sp ipv4 $d esp protect $1 pri 1 src $5 dst $6 sport 0:65535 dport 0:65535"
		echo "sa $d $1 aead_algo aes-128-gcm aead_key $2 mode ipv4-tunnel src $3 dst $4"
	done
}

# dpdk_run NAME CPU CONFIG PORTMASK UNPROTECTED IFACE...: one ipsec-secgw
# in gateway namespace NAME, one lcore on CPU, a port per IFACE.
dpdk_run() {
	local name=$1 cpu=$2 cfg=$3 pm=$4 um=$5 i=0 vdevs=() lcfg=""
	shift 5
	for ifc in "$@"; do
		vdevs+=(--vdev "net_af_xdp$i,iface=$ifc,start_queue=0,queue_count=1$DPDK_PMD_ARGS")
		lcfg+="${lcfg:+,}($i,0,$cpu)"
		i=$((i + 1))
	done
	# nsenter keeps /sys/fs/bpf (ip netns exec hides it from libxdp).
	# shellcheck disable=SC2086 # DPDK_MEM, DPDK_APP_ARGS: several words
	nice -n "$DPDK_NICE" nsenter --net="/run/netns/$P-$name" "$DPDK_BIN" -l "$cpu" -n 1 $DPDK_MEM --no-pci \
		--file-prefix "$P-$name" "${vdevs[@]}" --vdev crypto_aesni_gcm0 \
		-- -p "$pm" -u "$um" -P $DPDK_APP_ARGS --config "$lcfg" -f "$cfg" >"$WORK/dpdk-$name.log" 2>&1 &
	pids+=($!)
}

setup_dpdk() {
	local kab kba n
	DPDK_BIN=${DPDK_BIN:-$("$ROOT/bench/dpdk/build.sh")}
	kab=$(dpdk_key)
	kba=$(dpdk_key)
	mkdir -p "$WORK/dpdk"
	ns hA ip neigh replace 198.18.1.1 lladdr "$(mac_of gA lan0)" dev eth0 nud permanent
	ns hB ip neigh replace 198.18.2.1 lladdr "$(mac_of gB lan0)" dev eth0 nud permanent
	if [[ $DPDK_LAYOUT == shared ]]; then
		local wb
		for n in wan0:wanB lan0:lanB; do
			ns gA test -e "/sys/class/net/${n#*:}" && continue # moved already (a restart)
			ns gB ip link set "${n%:*}" down
			ns gB ip link set "${n%:*}" name "${n#*:}"
			ns gB ip link set "${n#*:}" netns "$P-gA"
			ns gA ip link set "${n#*:}" up
		done
		wb=$(mac_of gA wanB)
		{
			dpdk_sa 4097 "$kab" 192.0.2.1 192.0.2.2 198.18.1.0/24 198.18.2.0/24 "out in"
			dpdk_sa 8193 "$kba" 192.0.2.2 192.0.2.1 198.18.2.0/24 198.18.1.0/24 "out in"
			echo "rt ipv4 dst 192.0.2.2/32 port 1"
			echo "rt ipv4 dst 192.0.2.1/32 port 2"
			echo "rt ipv4 dst 198.18.1.0/24 port 0"
			echo "rt ipv4 dst 198.18.2.0/24 port 3"
			echo "neigh port 0 $(mac_of hA eth0)"
			echo "neigh port 1 $wb"
			echo "neigh port 2 $(mac_of gA wan0)"
			echo "neigh port 3 $(mac_of hB eth0)"
		} >"$WORK/dpdk/gA.cfg"
		dpdk_run gA "$GWA_CPU" "$WORK/dpdk/gA.cfg" 0xf 0x6 lan0 wan0 wanB lanB
		n=1
	elif [[ $DPDK_LAYOUT == per-gateway ]]; then
		{
			dpdk_sa 4097 "$kab" 192.0.2.1 192.0.2.2 198.18.1.0/24 198.18.2.0/24 out
			dpdk_sa 8193 "$kba" 192.0.2.2 192.0.2.1 198.18.2.0/24 198.18.1.0/24 in
			echo "rt ipv4 dst 192.0.2.2/32 port 1"
			echo "rt ipv4 dst 198.18.1.0/24 port 0"
			echo "neigh port 0 $(mac_of hA eth0)"
			echo "neigh port 1 $(mac_of gB wan0)"
		} >"$WORK/dpdk/gA.cfg"
		{
			dpdk_sa 8193 "$kba" 192.0.2.2 192.0.2.1 198.18.2.0/24 198.18.1.0/24 out
			dpdk_sa 4097 "$kab" 192.0.2.1 192.0.2.2 198.18.1.0/24 198.18.2.0/24 in
			echo "rt ipv4 dst 192.0.2.1/32 port 1"
			echo "rt ipv4 dst 198.18.2.0/24 port 0"
			echo "neigh port 0 $(mac_of hB eth0)"
			echo "neigh port 1 $(mac_of gA wan0)"
		} >"$WORK/dpdk/gB.cfg"
		dpdk_run gA "$GWA_CPU" "$WORK/dpdk/gA.cfg" 0x3 0x2 lan0 wan0
		dpdk_run gB "$GWB_CPU" "$WORK/dpdk/gB.cfg" 0x3 0x2 lan0 wan0
		n=2
	else
		log "dpdk: DPDK_LAYOUT is shared or per-gateway"
		return 1
	fi
	# Up once each process polls (or has died: the warm-up then fails).
	for _ in $(seq 150); do
		[[ $(cat "$WORK"/dpdk-g?.log 2>/dev/null | grep -c "entering main loop") -ge $n ]] && break
		sleep 0.1
	done
}
after_dpdk() { :; }
reset_dpdk() { stop_gateways && setup_dpdk && warm_up; }
