package ike

import (
	"errors"
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/ike/message"
)

// deleteChildTask deletes Child SAs with an INFORMATIONAL exchange (RFC 7296
// §1.4.1): we name our inbound SPIs, the peer answers with its own.
type deleteChildTask struct {
	children []*childSA
	done     chan error
}

func (*deleteChildTask) exchange() message.ExchangeType { return message.ExchangeInformational }

func (t *deleteChildTask) build(sa *ikeSA) ([]message.Payload, error) {
	if sa.state != StateEstablished {
		if t.done != nil {
			signal(t.done, errors.New("IKE SA is going away"))
		}
		return nil, errSkipTask
	}
	// The peer may have deleted some of them meanwhile, or an IKE rekey
	// moved them to another IKE SA.
	t.children = slices.DeleteFunc(t.children, func(c *childSA) bool { return c.state == childDead || c.ike != sa })
	if len(t.children) == 0 {
		if t.done != nil {
			signal(t.done, nil)
		}
		return nil, errSkipTask
	}
	d := &message.Delete{Protocol: message.ProtocolESP}
	for _, c := range t.children {
		c.state = childDeleting
		d.SPIs = append(d.SPIs, c.inSPI)
	}
	return []message.Payload{d}, nil
}

func (t *deleteChildTask) process(sa *ikeSA, resp message.Payloads) error {
	// Whatever the peer answers, the SAs we asked to delete are gone: the
	// peer has stopped using our inbound SPIs.
	for _, c := range t.children {
		sa.e.log.Info("Child SA deleted", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI), "spi_out", fmt.Sprintf("%08x", c.outSPI))
		sa.e.retireChild(sa, c)
	}
	if t.done != nil {
		signal(t.done, nil)
	}
	return nil
}

// deleteIKETask deletes the IKE SA and with it all its Child SAs (§1.4.1).
type deleteIKETask struct{}

func (*deleteIKETask) exchange() message.ExchangeType { return message.ExchangeInformational }

func (*deleteIKETask) build(sa *ikeSA) ([]message.Payload, error) {
	sa.state = StateDeleting
	return []message.Payload{&message.Delete{Protocol: message.ProtocolIKE}}, nil
}

func (*deleteIKETask) process(sa *ikeSA, resp message.Payloads) error {
	sa.e.log.Info("IKE SA deleted", "sa", sa.logID())
	sa.destroy()
	return nil
}

// livenessTask is the empty INFORMATIONAL request of RFC 7296 §2.4 (strongSwan's
// ike_dpd): any authenticated answer proves the peer alive.
type livenessTask struct {
	done chan error
}

func (*livenessTask) exchange() message.ExchangeType { return message.ExchangeInformational }

func (*livenessTask) build(*ikeSA) ([]message.Payload, error) { return nil, nil }

func (t *livenessTask) process(sa *ikeSA, resp message.Payloads) error {
	if t.done != nil {
		signal(t.done, nil)
	}
	return nil
}

// respondInformational answers the peer's INFORMATIONAL requests: Deletes of
// Child SAs (answered with the SPIs of our halves), a Delete of the IKE SA
// (answered empty, then the SA goes), and anything else, the empty
// liveness check included, with an empty response.
func respondInformational(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	var resp []message.Payload
	var after func()
	var closed []closedChild // children the peer closed (not rekeyed)
	for p := range req.All(message.PayloadDelete) {
		d := p.(*message.Delete)
		switch d.Protocol {
		case message.ProtocolIKE:
			sa.e.log.Info("peer deleted the IKE SA", "sa", sa.logID())
			if next := sa.ikeSuccessor; next != nil && next.state == StateEstablished && !sa.replaced {
				// The end of a rekey the peer started (§2.18).
				sa.e.log.Info("IKE SA rekeyed by peer", "old", sa.logID(), "new", next.logID())
				sa.moveTo(next)
			}
			// A close unless the SA was replaced by a rekey: then its
			// children live on in the successor.
			closed := sa.ikeSuccessor == nil && !sa.replaced
			var cs []closedChild
			if closed {
				for _, c := range sa.children {
					if c.state != childDead {
						cs = append(cs, closing(c))
					}
				}
			}
			conn := sa.conn
			sa.state = StateDeleting
			return nil, func() {
				sa.destroy()
				if closed {
					sa.e.peerClosed(conn, sa, cs, true)
				}
			}
		case message.ProtocolESP:
			ours := &message.Delete{Protocol: message.ProtocolESP}
			for _, spi := range d.SPIs {
				for _, c := range sa.children {
					if c.outSPI == spi {
						// A rekey's old SA: the peer has the new inbound
						// SA, so our traffic moves there before the old
						// one goes (make-before-break).
						sa.e.switchToSuccessor(sa, c)
						if c.successor == nil && c.state == childActive {
							closed = append(closed, closing(c))
						}
						ours.SPIs = append(ours.SPIs, c.inSPI)
						sa.e.log.Info("peer deleted Child SA", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI), "spi_out", fmt.Sprintf("%08x", c.outSPI))
						sa.e.retireChild(sa, c)
						break
					}
				}
			}
			if len(ours.SPIs) > 0 {
				resp = append(resp, ours)
			}
			if len(closed) > 0 {
				conn := sa.conn
				after = func() { sa.e.peerClosed(conn, sa, closed, false) }
			}
		}
	}
	return resp, after
}
