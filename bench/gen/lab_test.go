package gen

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// The lab: namespaces A (generator) and B (sink) joined by one veth pair
// with static neighbours; IPv6 is off so router solicitations do not
// reach the sink.

type genLab struct {
	nsA, nsB   string
	ifA, ifB   string
	macA, macB net.HardwareAddr
	ipA, ipB   netip.Addr
}

func newGenLab(tb testing.TB) *genLab {
	tb.Helper()
	testlab.RequireXDPLab(tb)
	tag := testlab.Tag()
	// 1504: room for IMIX's 1518-byte frame (sizes exclude the FCS).
	a := &testlab.End{NS: testlab.NewNetns(tb, "xg"+tag+"a", testlab.NoIPv6|testlab.LoUp), Name: "xg" + tag + "a0",
		MAC: net.HardwareAddr{0x02, 'X', 'G', 'E', 'N', 0x0a}, Addr: netip.MustParsePrefix("198.18.0.1/24"), MTU: 1504}
	b := &testlab.End{NS: testlab.NewNetns(tb, "xg"+tag+"b", testlab.NoIPv6|testlab.LoUp), Name: "xg" + tag + "b0",
		MAC: net.HardwareAddr{0x02, 'X', 'G', 'E', 'N', 0x0b}, Addr: netip.MustParsePrefix("198.18.0.2/24"), MTU: 1504}
	testlab.Veth(tb, a, b, testlab.StaticNeigh|testlab.TxOff)
	return &genLab{nsA: a.NS.Name, nsB: b.NS.Name, ifA: a.Name, ifB: b.Name, macA: a.MAC, macB: b.MAC,
		ipA: a.Addr.Addr(), ipB: b.Addr.Addr()}
}

// TestLabTxRx sends 10k packets with a Sender in A at a modest rate and
// counts them with a Receiver in B: nothing may be lost, reordered or
// duplicated, and every checksum must verify.
func TestLabTxRx(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst string
		sizes    []int
		rate     float64
	}{
		{"ipv4-64", "", "198.18.0.2", []int{64}, 100e3},
		{"ipv4-imix", "", "198.18.0.2", IMIX, 50e3},
		{"ipv6-512", "2001:db8::1", "2001:db8::2", []int{512}, 50e3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newGenLab(t)
			const count, flows = 10000, 8
			var r *Receiver
			rxDone := make(chan error, 1)
			opened := make(chan error, 1)
			go func() {
				rxDone <- InNetns(l.nsB, func() error {
					ifi, err := net.InterfaceByName(l.ifB)
					if err == nil {
						r, err = OpenReceiver(RxOptions{Ifindex: ifi.Index, Flows: flows, DstPort: 9, Verify: true,
							Count: count, Duration: 10 * time.Second})
					}
					opened <- err
					if err != nil {
						return err
					}
					defer r.Close()
					return r.Run()
				})
			}()
			if err := <-opened; err != nil {
				t.Fatal(err)
			}
			var s *Sender
			err := InNetns(l.nsA, func() error {
				src := netip.Addr{}
				if tc.src != "" {
					src = netip.MustParseAddr(tc.src)
				}
				dst := netip.MustParseAddr(tc.dst)
				// The MACs come from the interface and the neighbour table
				// for IPv4; the IPv6 run has no neighbours and names them.
				hop, err := ResolveHop(l.ifA, src, dst, dst.Is4(), time.Second)
				if err != nil {
					return err
				}
				if hop.DstMAC == nil {
					hop.DstMAC = l.macB
				}
				if !slices.Equal(hop.SrcMAC, l.macA) || !slices.Equal(hop.DstMAC, l.macB) {
					return fmt.Errorf("resolved %v → %v", hop.SrcMAC, hop.DstMAC)
				}
				g, err := NewGenerator(Config{SrcMAC: hop.SrcMAC, DstMAC: hop.DstMAC, Src: hop.Src, Dst: dst,
					SrcPort: 20000, DstPort: 9, Flows: flows, Sizes: tc.sizes})
				if err != nil {
					return err
				}
				s, err = OpenSender(g, TxOptions{Ifindex: hop.Ifindex, Rate: tc.rate, Count: count})
				if err != nil {
					return err
				}
				defer s.Close()
				return s.Run()
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-rxDone:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				r.Stop()
				<-rxDone
			}
			sum := NewSummary(s, r)
			tx, rx := sum.Tx, sum.Rx
			t.Logf("tx %d pkts %s; rx %d pkts %s; %+v", tx.Packets, PPS(tx.PPS), rx.Packets, PPS(rx.PPS), rx.SinkStats)
			if tx.Packets != count || rx.Tagged+rx.Untagged != count || rx.Lost != 0 || rx.Reordered != 0 ||
				rx.Duplicates != 0 || rx.BadChecksum != 0 || rx.Flows != flows || *sum.Missing != 0 {
				t.Fatalf("tx %+v\nrx %+v", tx, rx)
			}
			// The rate: the sender took about count/rate.
			if want := count / tc.rate; tx.Seconds < 0.8*want || tx.Seconds > 3*want {
				t.Errorf("sent %d packets in %.3f s at rate %v; want about %.3f s", count, tx.Seconds, tc.rate, want)
			}
		})
	}
}
