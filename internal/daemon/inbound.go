package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// staticPolicy is a policy of the configuration file with its direction:
// those with DirIn are not in the outbound SPD.
type staticPolicy struct {
	p   *spd.Policy
	dir config.PolicyDir
}

// inboundPolicies is the inbound side of the SPD, in order: every policy
// that decides inbound traffic (the outbound SPD's, which includes the IKE
// connections' traps and negotiated selectors, less dir: out, plus the
// file's dir: in ones at their place in the file), with its selector
// reversed as an inbound packet sees it.
func (d *Daemon) inboundPolicies() []*spd.Policy {
	d.live.RLock()
	static := d.static // a reload swaps it
	d.live.RUnlock()
	pos := make(map[*spd.Policy]int, len(static))
	for i, s := range static {
		pos[s.p] = i
	}
	var list []*spd.Policy
	next := 0 // the file's policies before next are placed
	placeInOnly := func(upto int) {
		for ; next < upto; next++ {
			if s := static[next]; s.dir == config.DirIn {
				list = append(list, s.p)
			}
		}
	}
	for _, p := range d.spd.Policies() {
		if i, ok := pos[p]; ok {
			placeInOnly(i)
			next = max(next, i+1)
			if static[i].dir == config.DirOut {
				continue
			}
		}
		list = append(list, p)
	}
	placeInOnly(len(static))
	rev := make([]*spd.Policy, len(list))
	for i, p := range list {
		rev[i] = &spd.Policy{Name: p.Name, Selector: p.Selector.Reverse(), Action: p.Action}
	}
	return rev
}

// inboundSPD compiles the inbound side of the SPD for the WAN program.
// Cleartext no policy covers follows default_action; in one-arm mode it
// passes, since the outbound mirror, which sees the same packets first,
// has applied default_action already and the protected side's own traffic
// must not be taken for inbound. A trunk (the LAN and the WAN as two
// VLANs of one port) is two-arm here: the WAN's tag sees only the WAN's
// traffic, so default_action applies to it.
func (d *Daemon) inboundSPD() (bpf.InboundSPD, error) {
	in := spd.New()
	if err := in.Replace(d.inboundPolicies()); err != nil {
		return bpf.InboundSPD{}, fmt.Errorf("inbound spd: %w", err)
	}
	t := bpf.CompileInbound(in, d.hostAddrs(), d.cfg.DefaultAction == spd.Bypass || d.cfg.OneArm() && !d.cfg.Trunk())
	if t.Truncated && !d.inTruncWarned {
		d.inTruncWarned = true
		d.log.Warn("more inbound policies than the XDP program scans: WAN cleartext that only a later policy decides is dropped",
			"policies", in.Len(), "scanned", bpf.MaxInboundRules)
	}
	return t, nil
}

// hostAddrs are the addresses the kernel accepts as its own, on every
// interface, and the IPv4 broadcast addresses of their subnets: WAN
// cleartext to them (IKE, management, DHCP) is not the SPD's to decide.
func (d *Daemon) hostAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		d.log.Warn("host addresses", "err", err)
		return d.ownAddrs()
	}
	var as []netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ad, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ad = ad.Unmap()
		as = append(as, ad)
		ones, bits := ipn.Mask.Size()
		if ad.Is4() && bits == 32 && ones < 31 {
			b := ad.As4()
			for i := range b {
				b[i] |= ^ipn.Mask[len(ipn.Mask)-4+i]
			}
			as = append(as, netip.AddrFrom4(b))
		}
	}
	return as
}

// syncInbound publishes the inbound SPD to the programs that receive the
// WAN (both sets but the LAN's).
func (d *Daemon) syncInbound() error {
	var errs []error
	var t *bpf.InboundSPD
	for _, s := range d.liveObjs() {
		if t == nil {
			in, err := d.inboundSPD()
			if err != nil {
				return err
			}
			t = &in
		}
		if err := s.o.SyncInbound(*t); err != nil {
			errs = append(errs, fmt.Errorf("xdp %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
