package sad

import "time"

// Path MTU per SA (RFC 4301 §8.2): an outbound SA remembers the smallest
// MTU an ICMP "fragmentation needed" / "packet too big" quoting its ESP
// reported for the path to its peer, and forgets it after PMTUAge (RFC
// 1191 §6.3, RFC 8201 §4: the path may have grown again), so the gateway
// then tries the interface's MTU once more.

// PMTUAge is how long a learned path MTU is kept.
const PMTUAge = 10 * time.Minute

// Smallest path MTUs accepted: what IPv4 hosts must take without
// fragmenting (RFC 791's 576; Linux's min_pmtu is 552) and the IPv6
// minimum link MTU (RFC 8200 §5). A report below is raised to them, so a
// forged ICMP cannot shrink the tunnel to nothing.
const (
	MinPMTU4 = 576
	MinPMTU6 = 1280
)

// PathMTU is the learned path MTU towards the peer, 0 when none is known.
// One atomic load: workers call it per packet.
func (sa *SA) PathMTU() int { return int(sa.pmtu.Load()) }

// LowerPathMTU records an ICMP report that the path carries at most mtu
// bytes. It only ever lowers the path MTU (a report above the current one
// is stale or forged), clamps it to the family's minimum, and restarts the
// ageing clock. It reports whether the path MTU changed.
func (sa *SA) LowerPathMTU(mtu int, now time.Time) bool {
	floor := MinPMTU4
	if sa.Remote.Is6() && !sa.Remote.Is4In6() {
		floor = MinPMTU6
	}
	if mtu < floor {
		mtu = floor
	}
	if mtu > 0xffff {
		return false
	}
	cur := sa.PathMTU()
	if cur != 0 && mtu >= cur {
		if mtu == cur {
			sa.pmtuAt.Store(now.UnixNano())
		}
		return false
	}
	sa.pmtuAt.Store(now.UnixNano())
	sa.pmtu.Store(uint32(mtu))
	return true
}

// AgePathMTU forgets a path MTU learned more than PMTUAge before now. It
// reports whether it did.
func (sa *SA) AgePathMTU(now time.Time) bool {
	if sa.pmtu.Load() == 0 || now.UnixNano()-sa.pmtuAt.Load() < int64(PMTUAge) {
		return false
	}
	sa.pmtu.Store(0)
	return true
}
