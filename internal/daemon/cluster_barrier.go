package daemon

import (
	"bytes"
	"net/netip"
	"sync"

	"github.com/xdpsec/xdpsec/ike/transport"
)

// heldConn is the IKE engine's Conn on a cluster node: a message the
// engine sends after an Installer hook queued an SA record (or mark)
// for etcd leaves only once that write is settled (committed, or failed
// and logged), in the order the engine sent them. So the peer never
// gets the message that lets it use an SA before a standby can have the
// SA (ike.Installer's ordering, carried to etcd), while the engine's
// loop goes on with other tunnels: a rekey storm's writes are batched
// (cluster.Batcher), not waited for one by one. With nothing queued a
// message goes out at once.
type heldConn struct {
	transport.Conn
	c *clusterIKE

	mu   sync.Mutex
	held []heldPacket
}

type heldPacket struct {
	need uint64 // the latest write queued when it was sent
	p    transport.Packet
}

// Send implements transport.Conn.
func (h *heldConn) Send(p transport.Packet) error {
	b := h.c.batcher()
	if b == nil {
		return h.Conn.Send(p)
	}
	need := b.Issued()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) == 0 && b.Settled() >= need {
		return h.Conn.Send(p)
	}
	p.Data = bytes.Clone(p.Data)
	h.held = append(h.held, heldPacket{need: need, p: p})
	return nil
}

// release sends the held messages whose writes are settled, in order.
func (h *heldConn) release(settled uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for ; n < len(h.held) && h.held[n].need <= settled; n++ {
		_ = h.Conn.Send(h.held[n].p) // as the engine's own sends: lost datagrams are retransmitted
		h.held[n] = heldPacket{}
	}
	h.held = h.held[n:]
}

// heldUDP is a heldConn on the daemon's UDP transport, with its optional
// interfaces (keepalives are not IKE messages: never held).
type heldUDP struct {
	*heldConn
	u *transport.UDP
}

func (h heldUDP) SendKeepalive(local, remote netip.AddrPort) error {
	return h.u.SendKeepalive(local, remote)
}
func (h heldUDP) Dropped() uint64  { return h.u.Dropped() }
func (h heldUDP) InitShed() uint64 { return h.u.InitShed() }

// engineConn is the Conn the IKE engine gets: conn, its messages held
// behind the Child SA writes queued before them.
func (c *clusterIKE) engineConn(conn transport.Conn) transport.Conn {
	h := &heldConn{Conn: conn, c: c}
	c.held = h
	if u, ok := conn.(*transport.UDP); ok {
		return heldUDP{h, u}
	}
	return h
}
