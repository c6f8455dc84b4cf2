package ike

import (
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/internal/enum"
)

// CloseAction is what happens when the peer closes an IKE SA or a Child SA
// (strongSwan's close_action).
type CloseAction uint8

const (
	// CloseNone leaves the connection down until it is initiated again
	// (or the peer comes back and initiates).
	CloseNone CloseAction = iota
	// CloseStart initiates again: a new IKE SA, retried until the peer
	// answers, when the IKE SA was deleted; the Child SA again on the same
	// IKE SA when only it was.
	CloseStart
	// CloseTrap keeps the policies as traps (TrapInstaller): matching
	// traffic is dropped and starts a new negotiation (an acquire).
	CloseTrap
)

var closeActionNames = [...]string{CloseNone: "none", CloseStart: "start", CloseTrap: "trap"}

func (a CloseAction) String() string { return enum.Name(a, closeActionNames[:], "close_action") }

// closedChild is what a close action needs of a Child SA the peer closed,
// taken before the SA is gone.
type closedChild struct {
	cfg           *ChildConfig
	reqID         uint32
	local, remote []message.TrafficSelector
}

func closing(c *childSA) closedChild {
	return closedChild{cfg: c.cfg, reqID: c.reqID, local: c.localTS, remote: c.remoteTS}
}

// peerClosed takes conn's close action after the peer deleted Child SAs
// cs of sa, or (whole) sa itself with them. It runs on the loop, after
// the SAs left the data plane.
func (e *Engine) peerClosed(conn *Connection, sa *ikeSA, cs []closedChild, whole bool) {
	if conn == nil || len(cs) == 0 && !whole {
		return
	}
	switch conn.CloseAction {
	case CloseStart:
		if whole {
			e.log.Info("peer closed the IKE SA: initiating again (close_action start)", "connection", conn.Name)
			e.restart(conn)
			return
		}
		if sa.state != StateEstablished {
			return
		}
		for _, c := range cs {
			if c.cfg != nil && !sa.hasChild(c.cfg.Name) {
				e.log.Info("peer closed the Child SA: creating it again (close_action start)", "sa", sa.logID(), "child", c.cfg.Name)
				sa.enqueue(newCreateChildTask(c.cfg, nil, nil))
			}
		}
	case CloseTrap:
		ti, ok := e.inst.(TrapInstaller)
		if !ok {
			e.log.Warn("installer cannot hold trap policies; close_action trap clears", "connection", conn.Name)
			return
		}
		for _, c := range cs {
			if err := ti.InstallTrap(c.reqID, selectors(c.local, c.remote)); err != nil {
				e.log.Error("cannot install trap policy", "connection", conn.Name, "reqid", c.reqID, "err", err)
			}
		}
	}
}
