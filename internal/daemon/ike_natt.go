package daemon

import (
	"fmt"
	"net/netip"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/sad"
)

// nattKeepalives is the IKEStats key (`xdpsec show stats`, "ike") of the
// NAT-T keepalives sent; the metrics export it on its own.
const nattKeepalives = "natt_keepalives"

var (
	_ ike.OutboundUsageInstaller = (*ikePlane)(nil)
	_ ike.EndpointInstaller      = (*ikePlane)(nil)
)

// OutboundPackets implements ike.OutboundUsageInstaller: the packets the
// workers sealed with an outbound SA, so that the engine sends no NAT-T
// keepalive while our ESP in UDP keeps the NAT's mapping alive.
func (p *ikePlane) OutboundPackets(spi uint32) (uint64, bool) {
	p.mu.Lock()
	sa := p.out[spi]
	p.mu.Unlock()
	if sa == nil {
		return 0, false
	}
	return sa.Counters.Packets.Load(), true
}

// MoveOutbound implements ike.EndpointInstaller: the peer's NAT mapping
// changed and its IKE SA followed it, so the outbound SA must send to the
// new address and port. The workers read an SA without locks, so a copy
// with the new endpoints (sad.SA.Moved: same keys, sequence numbers going
// on) takes the old one's place in each policy with one atomic swap, and
// the old one is killed: a worker that still holds it drops that batch's
// packets for it rather than send them to the old address. Its keys are
// the copy's, so it is not buried (bury would wipe them).
func (p *ikePlane) MoveOutbound(spi uint32, local, remote netip.Addr, encap sad.UDPEncap) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.out[spi]
	if !ok {
		return fmt.Errorf("outbound sa %08x: not installed", spi)
	}
	sa, err := old.Moved(local, remote, encap)
	if err != nil {
		return err
	}
	p.out[spi] = sa
	for _, pol := range p.bound[old.ReqID] {
		pol.SA.CompareAndSwap(old, sa)
	}
	old.Kill()
	for _, m := range []map[*sad.SA]bool{p.soft, p.hard} {
		if m[old] {
			m[sa] = true
			delete(m, old)
		}
	}
	p.d.log.Info("child sa moved", "dir", "out", "spi", fmt.Sprintf("%08x", spi), "name", sa.Name,
		"remote", remote, "udp_encap", encap.Enabled(), "dst_port", encap.DstPort)
	return nil
}
