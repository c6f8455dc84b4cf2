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

setup_xdpsec() {
	local g G cpu
	"$ROOT/scripts/lab/gen-config.sh" "$P" "$WORK/xdpsec" "$XDPSEC_ENCAP" aes128gcm16 >/dev/null
	for g in a b; do
		G=$(tr a-b A-B <<<"$g")
		cpu=GW${G}_CPU
		cpu=${!cpu}
		# One queue, its worker pinned to this gateway's CPU; XDPSEC_IFACE
		# adds interfaces keys (A/B runs of the AF_XDP levers, e.g.
		# "batch: 256, idle_spin: 50us, busy_poll: 50").
		sed -i "s/queues: 1,/queues: 1, cpus: [$cpu],${XDPSEC_IFACE:+ $XDPSEC_IFACE,}/" "$WORK/xdpsec/gw-$g.yaml"
		"$BIN" run --check -c "$WORK/xdpsec/gw-$g.yaml" >/dev/null
		# XDPSEC_NAPI="DEFER TIMEOUT": the gateway interfaces'
		# napi_defer_hard_irqs and gro_flush_timeout (ns), for busy polling.
		if [[ -n ${XDPSEC_NAPI:-} ]]; then
			ns "g$G" sh -c "for d in lan0 wan0; do echo ${XDPSEC_NAPI% *} >/sys/class/net/\$d/napi_defer_hard_irqs; echo ${XDPSEC_NAPI#* } >/sys/class/net/\$d/gro_flush_timeout; done"
		fi
		"$BIN" newkeys -c "$WORK/xdpsec/gw-$g.yaml" >/dev/null # fresh keys from gen-config.sh
		# lab.sh exec ends in exec: $! is the daemon, so SIGTERM reaches it.
		nice -n "$BENCH_NICE" taskset -c "$cpu" "$ROOT/scripts/lab.sh" exec "$P" "g$G" "$BIN" run -c "$WORK/xdpsec/gw-$g.yaml" \
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

# drain: wait until gwB has stopped handing packets to hostB (a user-space
# gateway can hold many in its queues after a flat-out run; they must not
# arrive in the next measurement), at most 3 s; fails if it has not.
drain() {
	local last now
	last=$(ns gB cat /sys/class/net/lan0/statistics/tx_packets)
	for _ in $(seq 12); do
		sleep 0.25
		now=$(ns gB cat /sys/class/net/lan0/statistics/tx_packets)
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
