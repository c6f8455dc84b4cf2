package iketest

import (
	"sync"

	"github.com/xdpsec/xdpsec/ike/transport"
)

// SwitchConn is a transport.Conn whose sockets can be attached later: a
// cluster standby's engine runs on it before the group's address (and so
// the sockets) are its own. Until Attach it receives nothing and sends
// nothing; Ports are fixed at creation (the group's).
type SwitchConn struct {
	ike, natt uint16
	ch        chan transport.Packet
	mu        sync.Mutex
	cur       transport.Conn
}

// NewSwitchConn returns a SwitchConn with the given ports.
func NewSwitchConn(ike, natt uint16) *SwitchConn {
	return &SwitchConn{ike: ike, natt: natt, ch: make(chan transport.Packet, 64)}
}

// Attach makes c the Conn it sends and receives on.
func (s *SwitchConn) Attach(c transport.Conn) {
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
	go func() {
		for p := range c.Receive() {
			s.ch <- p
		}
	}()
}

// Receive implements transport.Conn.
func (s *SwitchConn) Receive() <-chan transport.Packet { return s.ch }

// Send implements transport.Conn: dropped until Attach.
func (s *SwitchConn) Send(p transport.Packet) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Send(p)
}

// Ports implements transport.Conn.
func (s *SwitchConn) Ports() (ike, natt uint16) { return s.ike, s.natt }

// Close implements transport.Conn; the attached Conn is its owner's to close.
func (s *SwitchConn) Close() error { return nil }
