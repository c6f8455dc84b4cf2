package daemon

import (
	"fmt"
	"net/netip"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
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
	sa := p.d.store.Lookup(store.Key{SPI: spi, Dir: sad.Outbound, Origin: store.Negotiated})
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
// the old one is killed (store.Store.Move): a worker that still holds it
// drops that batch's packets for it rather than send them to the old
// address. Its keys are the copy's, so it does not retire (that would
// wipe them).
func (p *ikePlane) MoveOutbound(spi uint32, local, remote netip.Addr, encap sad.UDPEncap) error {
	sa, err := p.d.store.Move(spi, local, remote, encap)
	if err != nil {
		return err
	}
	p.d.log.Info("child sa moved", "dir", "out", "spi", fmt.Sprintf("%08x", spi), "name", sa.Name,
		"remote", remote, "udp_encap", encap.Enabled(), "dst_port", encap.DstPort)
	return nil
}
