package ike

import (
	"context"
	"errors"
	"fmt"

	"github.com/xdpsec/xdpsec/internal/enum"
)

// AcquireResult says what an acquire did.
type AcquireResult uint8

const (
	// AcquireCoalesced: a negotiation that will bring the Child SA is
	// under way, or the Child SA exists; nothing new was started.
	AcquireCoalesced AcquireResult = iota
	// AcquireIKE: a new IKE SA is being initiated, the Child SA with it.
	AcquireIKE
	// AcquireChild: the Child SA is being created with CREATE_CHILD_SA on
	// an established IKE SA.
	AcquireChild
)

var acquireResultNames = [...]string{
	AcquireCoalesced: "coalesced",
	AcquireIKE:       "initiating IKE SA",
	AcquireChild:     "creating Child SA",
}

func (r AcquireResult) String() string { return enum.Name(r, acquireResultNames[:], "acquire") }

// Acquire asks for the Child SA child of connection conn because the data
// plane met traffic for it without an SA (a trap policy: RFC 4301 §4.4.1's
// "acquire", strongSwan's start_action trap). It returns once the engine
// has decided, not when the SA is up.
//
// Acquires arrive repeatedly while a negotiation runs (the data plane
// raises one per policy per interval, and a child has several policies), so
// they coalesce: nothing starts while an IKE SA of the connection is being
// set up, rekeyed or already carries (or is creating) the child. Otherwise
// an established IKE SA gets a CREATE_CHILD_SA, and without one a new IKE
// SA is initiated. An empty child means the connection's first.
func (e *Engine) Acquire(ctx context.Context, conn, child string) (AcquireResult, error) {
	var res AcquireResult
	var err error
	if !e.do(ctx, func() { res, err = e.acquire(conn, child) }) {
		return 0, errors.New("ike: engine closed")
	}
	return res, err
}

func (e *Engine) acquire(name, child string) (AcquireResult, error) {
	c := e.connection(name)
	if c == nil {
		return 0, fmt.Errorf("ike: acquire: no connection %q", name)
	}
	if len(c.Children) == 0 {
		return 0, fmt.Errorf("ike: acquire: connection %s has no children", name)
	}
	cfg := &c.Children[0]
	if child != "" {
		cfg = nil
		for i := range c.Children {
			if c.Children[i].Name == child {
				cfg = &c.Children[i]
			}
		}
		if cfg == nil {
			return 0, fmt.Errorf("ike: acquire: connection %s has no child %q", name, child)
		}
	}
	var est *ikeSA
	for _, sa := range e.sas {
		if sa.conn != c || sa.unauthenticated() {
			continue
		}
		switch sa.state {
		case StateConnecting:
			// IKE_AUTH brings the first child and queues the others.
			return AcquireCoalesced, nil
		case StateEstablished:
			if sa.ikeRekey != nil || sa.ikeSuccessor != nil || sa.replaced {
				// The children are moving to the successor.
				return AcquireCoalesced, nil
			}
			if sa.hasChild(cfg.Name) {
				return AcquireCoalesced, nil
			}
			est = sa
		}
	}
	if est != nil {
		e.log.Info("acquire: creating Child SA", "sa", est.logID(), "child", cfg.Name)
		est.enqueue(newCreateChildTask(cfg, nil, nil))
		return AcquireChild, nil
	}
	if !c.RemoteAddr.IsValid() {
		return 0, fmt.Errorf("ike: acquire: connection %s has no remote address to initiate to", name)
	}
	e.log.Info("acquire: initiating", "connection", name, "child", cfg.Name)
	if _, err := e.initiate(name, nil); err != nil {
		return 0, err
	}
	return AcquireIKE, nil
}

// hasChild reports whether the IKE SA carries a Child SA of the named
// configuration or has one on its way (a CREATE_CHILD_SA queued or in
// flight that is not a rekey).
func (sa *ikeSA) hasChild(name string) bool {
	for _, c := range sa.children {
		if c.cfg != nil && c.cfg.Name == name {
			return true
		}
	}
	creates := func(t task) bool {
		ct, ok := t.(*createChildTask)
		return ok && ct.old == nil && ct.cfg != nil && ct.cfg.Name == name
	}
	if sa.pending != nil && creates(sa.pending.task) {
		return true
	}
	for _, t := range sa.queue {
		if creates(t) {
			return true
		}
	}
	return false
}
