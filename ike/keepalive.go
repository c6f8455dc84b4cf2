package ike

import (
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/sad"
)

// DefaultKeepalive is the default Connection.Keepalive, strongSwan's: well
// under the 30 s or more after which common NATs drop an idle UDP mapping.
const DefaultKeepalive = 20 * time.Second

// natKeepalive is the keepalive state of one IKE SA behind a NAT. It lives
// in the engine's map rather than in ikeSA, which most gateways hold many
// of and only some of which are behind a NAT.
type natKeepalive struct {
	timer    *time.Timer
	lastSent time.Time // the last datagram we know went out on the flow
	prev     time.Time // when the previous check ran
	espOut   uint64    // outbound ESP packets of the Child SAs at that check
}

// keepaliveInterval is the connection's keepalive interval; 0: none.
func (sa *ikeSA) keepaliveInterval() time.Duration {
	if sa.conn == nil || sa.conn.Keepalive < 0 {
		return 0
	}
	if sa.conn.Keepalive == 0 {
		return DefaultKeepalive
	}
	return sa.conn.Keepalive
}

// armKeepalive starts NAT-T keepalives for an established IKE SA when we
// are behind a NAT (or claim to be, ForceEncap: a NAT NAT detection missed
// is the usual reason to force encapsulation) and the SA runs on the NAT-T
// port, whose mapping the ESP in UDP shares.
func (sa *ikeSA) armKeepalive() {
	d := sa.keepaliveInterval()
	if d <= 0 || !sa.natLocal || !sa.natt() || sa.e.keepalives[sa] != nil {
		return
	}
	if _, ok := sa.e.conn.(transport.KeepaliveSender); !ok {
		return
	}
	now := sa.e.now()
	k := &natKeepalive{lastSent: now, prev: now, espOut: sa.outboundPackets()}
	sa.e.keepalives[sa] = k
	k.timer = sa.e.afterFunc(sa.keepaliveStep(d), sa.keepaliveCheck)
}

// keepaliveStep is the longest wait between two checks: the interval, or
// half of it when the installer reports outbound ESP, so that the time of
// our last ESP is known to within half an interval (as dpdStep).
func (sa *ikeSA) keepaliveStep(d time.Duration) time.Duration {
	if _, ok := sa.e.inst.(OutboundUsageInstaller); ok {
		return d / 2
	}
	return d
}

// keepaliveCheck sends a keepalive when nothing went out on the IKE SA's
// UDP flow for the interval, and re-arms itself. ESP sent since the
// previous check counts as sent at that check (the earliest it can have
// gone), so a keepalive follows the last packet by at most an interval and
// a half, and never goes out while traffic flows.
func (sa *ikeSA) keepaliveCheck() {
	k := sa.e.keepalives[sa]
	if k == nil {
		return
	}
	d := sa.keepaliveInterval()
	if sa.state != StateEstablished || sa.replaced || d <= 0 || !sa.natLocal || !sa.natt() {
		sa.stopKeepalive()
		return
	}
	now := sa.e.now()
	if n := sa.outboundPackets(); n != k.espOut {
		// A moved or deleted Child SA lowers the sum; any change is traffic
		// or a change of SAs, both reason enough to wait another interval.
		k.espOut = n
		if k.prev.After(k.lastSent) {
			k.lastSent = k.prev
		}
	}
	k.prev = now
	idle := now.Sub(k.lastSent)
	next := d - idle
	if idle >= d {
		ks := sa.e.conn.(transport.KeepaliveSender)
		if err := ks.SendKeepalive(sa.local, sa.remote); err != nil {
			sa.e.log.Debug("NAT-T keepalive failed", "sa", sa.logID(), "err", err)
		} else {
			sa.e.keepalivesSent.Add(1)
		}
		k.lastSent = now
		next = d
	}
	k.timer = sa.e.afterFunc(min(next, sa.keepaliveStep(d)), sa.keepaliveCheck)
}

// sentOnFlow notes that an IKE message went to the peer from local.
func (sa *ikeSA) sentOnFlow(local, remote netip.AddrPort) {
	if k := sa.e.keepalives[sa]; k != nil && local == sa.local && remote == sa.remote {
		k.lastSent = sa.e.now()
	}
}

// stopKeepalive ends the IKE SA's keepalives.
func (sa *ikeSA) stopKeepalive() {
	if k := sa.e.keepalives[sa]; k != nil {
		k.timer.Stop()
		delete(sa.e.keepalives, sa)
	}
}

// outboundPackets is the sum of the packets the data plane sent on the
// IKE SA's installed outbound Child SAs, or 0 when the installer cannot
// tell (OutboundUsageInstaller).
func (sa *ikeSA) outboundPackets() uint64 {
	u, ok := sa.e.inst.(OutboundUsageInstaller)
	if !ok {
		return 0
	}
	var sum uint64
	for _, c := range sa.children {
		if c.outInst {
			if n, ok := u.OutboundPackets(c.outSPI); ok {
				sum += n
			}
		}
	}
	return sum
}

// moveChildren points the installed outbound Child SAs at the IKE SA's
// current endpoints, after it followed the peer to a new address or port
// (RFC 7296 §2.23, RFC 3948 §2.1: the ESP goes where the IKE does). An
// installer that cannot move SAs (no EndpointInstaller) leaves them; the
// SAs installed from now on take the new endpoints anyway.
func (sa *ikeSA) moveChildren() {
	mover, ok := sa.e.inst.(EndpointInstaller)
	for _, c := range sa.children {
		var encap sad.UDPEncap
		if sa.natLocal || sa.natRemote {
			encap = sad.UDPEncap{SrcPort: sa.local.Port(), DstPort: sa.remote.Port()}
		}
		if !c.outInst {
			continue
		}
		if !ok {
			sa.e.log.Warn("peer moved but the installer cannot move Child SAs", "sa", sa.logID(), "spi", c.outSPI)
			continue
		}
		if err := mover.MoveOutbound(c.outSPI, sa.local.Addr(), sa.remote.Addr(), encap); err != nil {
			sa.e.log.Warn("cannot move Child SA to the peer's new address", "sa", sa.logID(), "spi", c.outSPI, "err", err)
			continue
		}
		c.encap = encap
		sa.e.log.Info("Child SA follows the peer", "sa", sa.logID(), "spi", c.outSPI, "remote", sa.remote, "udp_encap", encap.Enabled())
	}
}

// KeepalivesSent is how many NAT-T keepalives the engine has sent.
func (e *Engine) KeepalivesSent() uint64 { return e.keepalivesSent.Load() }
