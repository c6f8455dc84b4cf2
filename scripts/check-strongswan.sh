#!/bin/bash
# Checks that strongSwan, started the way the interop tests start it,
# loads every plugin and algorithm they rely on; names the Debian package
# to install when not. Used by install-deps.sh and, once per test binary,
# by the strongSwan test harnesses (internal/swantest), so a machine
# without a plugin fails with one clear line instead of many unrelated
# test failures.
#
#   scripts/check-strongswan.sh [PLUGIN...]
#
# PLUGIN...: charon's `load` list (default: the union of the tests'
# lists). As the tests do, it runs charon as root in a network namespace
# of its own with a private /run bind-mounted from a temporary directory
# and an explicit plugin list in strongswan.conf, then asks it over VICI
# (`swanctl --stats`, `--list-algs`) what it loaded.
#
# Exit status: 0 all there; 1 something is missing (the message says
# which package); 2 charon is not installed at all, or not root.
set -uo pipefail

charon=/usr/lib/ipsec/charon
plugins=("$@")
if ((${#plugins[@]} == 0)); then
	plugins=(random nonce aes sha1 sha2 hmac gcm chapoly curve25519 gmp openssl kdf x509 pubkey pem pkcs1
		vici socket-default kernel-libipsec kernel-netlink)
fi
# Algorithms (swanctl --list-algs names) the tests negotiate.
algs=(AES_GCM_16 AES_CBC HMAC_SHA2_256_128 PRF_HMAC_SHA2_384 MODP_2048 ECP_256 ECP_384 CURVE_25519 CHACHA20_POLY1305)

# package PLUGIN: the Debian 12 package that ships charon's PLUGIN.
package() {
	case $1 in
	random | nonce | aes | sha1 | sha2 | hmac | gmp | kdf | x509 | pubkey | pem | pkcs1 | pkcs8 | xcbc | drbg | mgf1 | md5 | kernel-netlink)
		echo libstrongswan ;;
	openssl | gcm | aesni | agent | connmark) echo libstrongswan-standard-plugins ;;
	chapoly | curve25519 | gcrypt | ctr | ccm | cmac | af-alg | curl | rdrand) echo libstrongswan-extra-plugins ;;
	kernel-libipsec | farp | dhcp | forecast | eap-*) echo libcharon-extra-plugins ;;
	socket-default | updown | counters) echo strongswan-libcharon ;;
	vici) echo strongswan-swanctl ;;
	*) echo "the package with /usr/lib/ipsec/plugins/libstrongswan-$1.so" ;;
	esac
}

# report WHY: one line naming what is wrong and what to install, exit 1.
missing_pkgs=()
report() {
	local why=$1
	local pkgs
	pkgs=$(printf '%s\n' "${missing_pkgs[@]}" | sort -u | tr '\n' ' ')
	echo "check-strongswan: $why; install: apt-get install ${pkgs% } (or run scripts/install-deps.sh)" >&2
	exit 1
}

if [[ ! -x $charon ]]; then
	echo "check-strongswan: $charon not installed (apt-get install strongswan-charon, or run scripts/install-deps.sh)" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "check-strongswan: needs root (charon runs in a network namespace of its own)" >&2
	exit 2
fi
if ! command -v swanctl >/dev/null; then
	missing_pkgs+=(strongswan-swanctl)
	report "charon is installed but swanctl is not"
fi

# swanctl parses the tests' private keys itself, with the plugins it finds
# installed (it prints them in its usage).
have=" $(swanctl --help 2>&1 | sed -n 's/^loaded plugins: //p') "
absent=()
for p in openssl pem pkcs1 x509 pubkey; do
	[[ $have == *" $p "* ]] || { absent+=("$p"); missing_pkgs+=("$(package "$p")"); }
done
((${#absent[@]} == 0)) || report "swanctl has no ${absent[*]} plugin, which it needs to load the tests' ECDSA keys and certificates"

dir=$(mktemp -d /tmp/xdpsec-check-strongswan.XXXXXX)
pid=
cleanup() {
	if [[ -n $pid ]]; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/run"
cat >"$dir/strongswan.conf" <<EOF
charon {
	load = ${plugins[*]}
	plugins {
		vici {
			socket = unix://$dir/charon.vici
		}
	}
}
EOF
STRONGSWAN_CONF=$dir/strongswan.conf unshare --net --mount --propagation private \
	sh -c "mount --bind '$dir/run' /run && exec $charon" >"$dir/charon.stdout" 2>&1 &
pid=$!
# Up when it answers over VICI (the socket file alone can be left by a
# charon that then aborted).
up=
for _ in $(seq 100); do
	if [[ -S $dir/charon.vici ]] && swanctl --stats --uri "unix://$dir/charon.vici" >"$dir/stats" 2>&1; then
		up=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
if [[ -z $up ]]; then
	# The plugins charon said it could not load, and the features it
	# found no plugin for.
	failed=$(sed -n "s/.*plugin '\([^']*\)': failed to load.*/\1/p" "$dir/charon.stdout" | sort -u | tr '\n' ' ')
	for p in $failed; do missing_pkgs+=("$(package "$p")"); done
	((${#missing_pkgs[@]})) || missing_pkgs+=(libstrongswan libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins)
	grep -E "failed to load|unmet|abort" "$dir/charon.stdout" | sed 's/^/  charon: /' >&2
	report "charon with the tests' plugins (${plugins[*]}) did not start${failed:+ (could not load: ${failed% })}"
fi
stats=$(cat "$dir/stats")
loaded=" $(sed -n 's/^loaded plugins: //p' <<<"$stats") "
absent=()
for p in "${plugins[@]}"; do
	[[ $loaded == *" $p "* ]] || { absent+=("$p"); missing_pkgs+=("$(package "$p")"); }
done
((${#absent[@]} == 0)) || report "charon did not load the plugins ${absent[*]} the tests list"
list=$(swanctl --list-algs --uri "unix://$dir/charon.vici" 2>&1)
noalg=()
for a in "${algs[@]}"; do
	grep -qw -- "$a" <<<"$list" || noalg+=("$a")
done
if ((${#noalg[@]})); then
	missing_pkgs+=(libstrongswan-standard-plugins libstrongswan-extra-plugins)
	report "charon has no ${noalg[*]} with the tests' plugins"
fi
exit 0
