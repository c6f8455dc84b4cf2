package daemon

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/sad"
)

// A graceful move loses nothing on the wire (cluster.HandOver,
// fastpath/gatehold.go):
//  1. the old owner, before it stops, points the group's gate at the new
//     owner's MACs: from the first frame it refuses, the group's frames
//     that still reach it (peers and hosts whose neighbour entries name it
//     until the announcements land) go on to the new owner, unopened;
//  2. it stops, waits for its last batch, publishes its exact last replay
//     tops, then writes the mark;
//  3. the new owner takes the group, applies the tops, resumes above the
//     marks, marks the gate ready (it held the forwarded frames until
//     then, and processes them first), and only then moves the addresses.

// moveForward is how long an old owner forwards a moved group's frames:
// past the new owner's announcements (cluster.announce: 0, 100 and 500 ms
// after it took the group) with room for a slow take.
const moveForward = 2 * time.Second

// moveMACsTimeout bounds the read of the nodes' MACs before a move (the
// old owner still sends meanwhile).
const moveMACsTimeout = 500 * time.Millisecond

// handOverState is what the clusterPlane keeps for moves.
type handOverState struct {
	node atomic.Pointer[cluster.Node] // set once started
	self atomic.Pointer[cluster.NodeMACs]
}

// handOver are the plane's hooks for the Ownership.
func (p *clusterPlane) handOver() cluster.HandOver {
	return cluster.HandOver{Forward: p.forwardTo, Final: p.finalTops}
}

// forwardTo points group's gate at node to's MACs (if both nodes' MACs
// are known) before this node stops sending for it.
func (p *clusterPlane) forwardTo(group, to string) {
	n, self := p.ho.node.Load(), p.ho.self.Load()
	if n == nil || self == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), moveMACsTimeout)
	defer cancel()
	macs, err := n.Ownership.MACs(ctx)
	dst, ok := macs[to]
	if err != nil || !ok {
		p.log.Warn("cluster: move without forwarding: the new owner's MACs are unknown (frames that reach this node during the move are lost)", "group", group, "to", to, "err", err)
		return
	}
	f := &sad.Forward{To: dst, Self: *self, Until: sad.Now() + int64(moveForward)}
	names := make([]string, 0, len(macs))
	for name := range macs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f.Nodes = append(f.Nodes, macs[name][0], macs[name][1])
	}
	n.Ownership.Group(group).Gate().SetForward(f)
}

// finalTops publishes group's replay tops once this node stopped
// receiving for it (its gate closed, its last batch through): the next
// owner's windows start exactly there.
func (p *clusterPlane) finalTops(group string) {
	n := p.ho.node.Load()
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.LeaseTTL)
	defer cancel()
	sas := append(slices.Clone(p.in[group]), p.ike.inbound(group)...)
	if _, err := n.Tops.Publish(ctx, group, sas); err != nil {
		p.log.Warn("cluster: last replay tops not published before the hand-over: the next owner starts at the previous ones", "group", group, "err", err)
	}
}

// taken: this node took group: it forwards the group's frames no more.
func (p *clusterPlane) taken(group string) {
	if n := p.ho.node.Load(); n != nil {
		n.Ownership.Group(group).Gate().SetForward(nil)
	}
}

// publishClusterMACs records this node's WAN and LAN MACs in etcd for the
// other nodes' forwarding during moves, and warms the next hops to the
// groups' peers.
func (d *Daemon) publishClusterMACs() {
	p := d.cluster
	if p == nil || d.wanIf == nil || d.lanIf == nil {
		return
	}
	// A standby resolves the peers of the groups it may take now, not on
	// its first packets (the workers also warm the next hops of the frames
	// they hold for a group: fastpath/gatehold.go).
	if d.wanHop != nil {
		for _, ks := range p.out {
			for _, k := range ks {
				d.wanHop.Lookup(k.SA.Remote)
			}
		}
	}
	n := p.ho.node.Load()
	if n == nil || len(d.wanIf.HardwareAddr) != 6 || len(d.lanIf.HardwareAddr) != 6 {
		return
	}
	var m cluster.NodeMACs
	copy(m[0][:], d.wanIf.HardwareAddr)
	copy(m[1][:], d.lanIf.HardwareAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := n.Ownership.PutMACs(ctx, d.wanIf.HardwareAddr, d.lanIf.HardwareAddr); err != nil {
		d.log.Warn("cluster: this node's MACs not recorded: moves to it lose the frames that reach the old owner meanwhile", "err", err)
		return
	}
	p.ho.self.Store(&m)
}

// gateHold is how long the workers hold a group's frames that reach this
// node before the group is ready here: a lease covers a move's take.
func (d *Daemon) gateHold() int64 {
	if d.cfg.Cluster == nil {
		return 0
	}
	return int64(d.cfg.Cluster.LeaseTTL)
}

// ownMACs are the WAN and LAN interfaces' MACs, for the workers' check of
// frames of groups not ready here (zero where unknown: not checked).
func (d *Daemon) ownMACs() (m [2][6]byte) {
	if d.cfg.Cluster == nil {
		return m
	}
	for i, ifc := range [2]*net.Interface{d.wanIf, d.lanIf} {
		if ifc != nil && len(ifc.HardwareAddr) == 6 {
			copy(m[i][:], ifc.HardwareAddr)
		}
	}
	return m
}
