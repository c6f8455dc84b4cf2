package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// clusterIKE runs the tunnel groups' negotiated tunnels on the cluster
// (issue 11 items 3 and 6, docs/cluster.md): on a group's owner, the IKE
// engine's exports go to etcd (IKEWriter) and so do the Child SAs it
// installs (Replicator), whose outbound halves send under the group's
// gate and above its sequence marks like the static SAs; on the other
// nodes the group's IKE SAs are imported into the engine passively and
// its Child SAs installed as standby SAs (limit 0), until the node takes
// the group: then the SAs resume above their marks, the inbound windows
// start at the published tops, and the engine continues the IKE SAs
// (Engine.Activate) without a new IKE_SA_INIT.
type clusterIKE struct {
	p     *clusterPlane
	st    *store.Store
	log   *slog.Logger
	group map[string]string // connection -> group
	// starts are the grouped connections with start_action start: the
	// engine gets them without it (a standby must not initiate them) and
	// the owner initiates them when it takes a group that has no IKE SA of
	// them.
	starts map[string]bool

	ikeRep *cluster.IKEReplicator
	writer *cluster.IKEWriter
	// batch writes the Child SA records and first sequence blocks (the
	// Installer hooks queue, they never wait for etcd); held is the
	// engine's Conn, which holds messages behind the writes queued before
	// them (cluster_barrier.go).
	batch atomic.Pointer[cluster.Batcher]
	held  *heldConn
	tops  atomic.Pointer[cluster.ReplayTops] // the node's (they outlive the plane's node field)
	marks atomic.Pointer[cluster.SeqMarks]

	mu      sync.Mutex
	closed  bool // shutting down: nothing more is written
	engine  *ike.Engine
	owned   map[string]bool
	follow  map[string]context.CancelFunc // groups followed (this node a standby)
	out     map[string]map[uint32]seqstate.Key
	in      map[string]map[uint32]*sad.SA
	reqIDs  map[string]map[uint64][]uint32 // group -> IKE SA (local SPI) -> its Child SAs' ReqIDs
	nextReq map[string]uint32

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newClusterIKE sorts the groups' connections; it hears the ownership
// changes from the start, the engine comes later (start).
func newClusterIKE(p *clusterPlane, log *slog.Logger) *clusterIKE {
	c := &clusterIKE{p: p, log: log, group: map[string]string{}, starts: map[string]bool{},
		owned: map[string]bool{}, follow: map[string]context.CancelFunc{},
		out: map[string]map[uint32]seqstate.Key{}, in: map[string]map[uint32]*sad.SA{},
		reqIDs: map[string]map[uint64][]uint32{}, nextReq: map[string]uint32{}}
	bases := map[uint32]string{}
	for _, g := range p.cfg.Groups {
		for _, conn := range g.Connections {
			c.group[conn] = g.Name
		}
		if o, ok := bases[reqIDBase(g.Name)]; ok && len(g.Connections) > 0 {
			log.Warn("cluster: two tunnel groups share a ReqID and SPI range: rename one", "group", g.Name, "other", o)
		}
		if len(g.Connections) > 0 {
			bases[reqIDBase(g.Name)] = g.Name
		}
	}
	return c
}

// configure sets the engine's hooks: exports, cluster-wide ReqIDs, and no
// start action of its own for grouped connections.
func (c *clusterIKE) configure(cfg *ike.Config) {
	c.newBatcher()
	cfg.Export = c.export
	cfg.ReqID = c.reqID
	cfg.SPIRange = c.spiRange
	for i := range cfg.Connections {
		conn := &cfg.Connections[i]
		if c.group[conn.Name] != "" && conn.StartAction == ike.StartStart {
			c.starts[conn.Name] = true
			conn.StartAction = ike.StartNone
		}
	}
}

// start runs the IKE SA writer and follows every group this node does not
// own; the engine runs by now, on st.
func (c *clusterIKE) start(e *ike.Engine, st *store.Store) {
	node := c.p.node
	c.st = st
	c.ikeRep = node.Replicator.IKE()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.writer = c.ikeRep.NewIKEWriter(cluster.DefaultIKEWriteInterval, func(err error) {
		c.log.Warn("cluster: IKE SA not replicated", "err", err)
	})
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.writer.Run(c.ctx) }()
	b := c.newBatcher()
	go func() { defer c.wg.Done(); b.Run(c.ctx) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.engine = e
	for _, g := range c.p.cfg.Groups {
		if len(g.Connections) == 0 {
			continue
		}
		if c.owned[g.Name] {
			c.initiateLocked(g.Name, nil)
		} else {
			c.followLocked(g.Name)
		}
	}
}

// newBatcher makes the Batcher once the cluster plane runs.
func (c *clusterIKE) newBatcher() *cluster.Batcher {
	if b := c.batch.Load(); b != nil || c.p.node == nil {
		return b
	}
	node := c.p.node
	c.tops.Store(node.Tops)
	c.marks.Store(node.Marks)
	b := node.Replicator.Batcher(node.Marks, clusterIKEWriteTimeout)
	b.Notify(func(settled uint64) {
		if c.held != nil {
			c.held.release(settled)
		}
	})
	c.batch.Store(b)
	return b
}

// batcher is the Batcher (nil before the cluster plane runs).
func (c *clusterIKE) batcher() *cluster.Batcher { return c.batch.Load() }

// initiateLocked initiates the group's start_action start connections
// that have no IKE SA here (up).
func (c *clusterIKE) initiateLocked(g string, up map[string]bool) {
	e := c.engine
	for conn := range c.starts {
		if c.group[conn] != g || up[conn] {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ictx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			defer cancel()
			if err := e.Initiate(ictx, conn); err != nil && c.ctx.Err() == nil {
				c.log.Warn("cluster: initiate after taking the group failed", "group", g, "connection", conn, "err", err)
			}
		}()
	}
}

// close stops following and writing.
func (c *clusterIKE) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.cancel == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
	if b := c.batch.Swap(nil); b != nil && c.held != nil {
		c.held.release(b.Issued()) // nothing more is written: what is held goes
	}
}

// groupOfSA is the group of a negotiated SA (its name is CONNECTION/CHILD).
func (c *clusterIKE) groupOfSA(name string) string {
	conn, _, _ := strings.Cut(name, "/")
	return c.group[conn]
}

// export is the engine's Export hook (on its loop: never blocks).
func (c *clusterIKE) export(st ike.IKESAState) {
	g := c.group[st.Connection]
	c.mu.Lock()
	owned := g != "" && c.owned[g]
	if g != "" {
		c.noteReqIDsLocked(g, st)
	}
	c.mu.Unlock()
	if !owned || c.writer == nil {
		st.Wipe()
		return
	}
	c.writer.Offer(g, st)
}

// noteReqIDsLocked remembers the ReqIDs of an IKE SA's Child SAs.
func (c *clusterIKE) noteReqIDsLocked(g string, st ike.IKESAState) {
	m := c.reqIDs[g]
	if m == nil {
		m = map[uint64][]uint32{}
		c.reqIDs[g] = m
	}
	if st.Deleted {
		delete(m, st.LocalSPI())
		return
	}
	ids := make([]uint32, 0, len(st.Children))
	for _, ch := range st.Children {
		ids = append(ids, ch.ReqID)
	}
	m[st.LocalSPI()] = ids
}

// reqIDBase is the first ReqID of a group's range: the top bit set (the
// engine's own counter and configured ReqIDs stay far below), 15 bits of
// the group name's hash, 16 bits of counter. Every node computes the same
// range for a group, and only its owner allocates from it, so a
// replicated SA's ReqID never collides with another group's or with the
// standby's own SAs'.
func reqIDBase(group string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(group))
	return 1<<31 | (h.Sum32()&0x7fff)<<16
}

// reqID is the engine's ReqID hook: the next ReqID of the connection's
// group that no Child SA of the group holds (0: not grouped).
func (c *clusterIKE) reqID(conn string) uint32 {
	g := c.group[conn]
	if g == "" {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	used := map[uint32]bool{}
	for _, ids := range c.reqIDs[g] {
		for _, id := range ids {
			used[id] = true
		}
	}
	base := reqIDBase(g)
	for range 1 << 16 {
		n := c.nextReq[g]%0xffff + 1 // 1..0xffff
		c.nextReq[g] = n
		if !used[base|n] {
			return base | n
		}
	}
	return 0 // all 65535 in use: the engine's own counter
}

// spiRange is the engine's SPIRange hook: a grouped connection's inbound
// SPIs carry its group's prefix (as its ReqIDs: top bit, 15 bits of the
// name's hash; only the owner allocates), the others have the top bit
// clear. So an SA a standby follows never has the SPI of one of the
// standby's own inbound SAs (the store would replace one by the other),
// unless two groups' names share a hash (checked: not of the configured
// groups, see newClusterIKE).
func (c *clusterIKE) spiRange(conn string) (prefix, mask uint32) {
	if g := c.group[conn]; g != "" {
		return reqIDBase(g), 0xffff0000
	}
	return 0, 1 << 31
}

// prepare runs before a negotiated SA of this node's engine goes into the
// store: a grouped SA gets the group's gate (an inbound one receives only
// while the group is ready here, sad.Gate.Ready); an outbound one, on the
// group's owner, its first block of sequence numbers at once (limit
// seqstate.MinBlock), before installed has queued its record and mark.
// That is safe because the SA's keys are new (the engine installs an
// outbound SA only with keys it has just derived, counting from 1) and
// installed writes the record and the mark at that block in one
// transaction: until it commits no other node knows the SA, so none can
// send under its keys; once it commits a new owner resumes above the
// block. Held at 0 until the commit (as before), a rekey's new SA took
// the traffic at once and dropped it for the etcd round trips: 5-16
// packets at 1,000/s per rekey against strongSwan
// (TestClusterOutboundReservedBeforePublish, TestClusterSwanTakeover).
func (c *clusterIKE) prepare(sa *sad.SA) {
	g := c.groupOfSA(sa.Name)
	if g == "" {
		return
	}
	sa.SetGate(c.p.node.Ownership.Group(g).Gate())
	if sa.Dir != sad.Outbound {
		return
	}
	c.mu.Lock()
	owned := c.owned[g] && !c.closed
	c.mu.Unlock()
	if owned {
		sa.SetSeqLimit(seqstate.MinBlock)
	} else {
		sa.SetSeqLimit(0) // installed warns: not replicated, it cannot send
	}
}

// abandon forgets an outbound SA prepared that the store refused.
func (c *clusterIKE) abandon(sa *sad.SA) {
	g := c.groupOfSA(sa.Name)
	if g == "" || sa.Dir != sad.Outbound {
		return
	}
	sa.SetSeqLimit(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.out[g][sa.SPI]; ok && k.SA == sa {
		delete(c.out[g], sa.SPI)
		c.p.res.Remove([]seqstate.Key{k})
	}
}

// clusterIKEWriteTimeout bounds one transaction of the Batcher.
const clusterIKEWriteTimeout = 2 * time.Second

// installed runs after the engine installed a negotiated SA (cfg with its
// keys, still the engine's): a grouped one is queued for etcd, sealed,
// and an outbound one with the first block of its sequence numbers
// (cluster.Batcher: one transaction for the SAs of many tunnels). It does
// not wait: the engine's messages sent from now on are held until the
// write is settled (heldConn), so a standby has the SA before the peer
// can use it; an outbound SA sends within its first block meanwhile
// (see prepare: record and mark commit together or not at all).
func (c *clusterIKE) installed(sa *sad.SA, cfg sad.Config, bound []sad.Selector) {
	g := c.groupOfSA(sa.Name)
	if g == "" {
		return
	}
	c.mu.Lock()
	owned, closed := c.owned[g], c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if !owned {
		c.log.Warn("cluster: a grouped Child SA installed on a node that does not own the group: not replicated, it cannot send", "group", g, "sa", sa.Name, "spi", fmt.Sprintf("%08x", sa.SPI))
		return
	}
	spi := fmt.Sprintf("%08x", sa.SPI)
	warn := func(err error) { c.log.Warn("cluster: Child SA not replicated", "group", g, "spi", spi, "err", err) }
	b := c.batcher()
	if b == nil {
		return // shutting down
	}
	rec := cluster.Record{Config: cfg, Bound: bound, Created: time.Now()}
	if sa.Dir == sad.Inbound {
		c.mu.Lock()
		c.trackIn(g, sa)
		c.mu.Unlock()
		if _, err := b.Put(g, &rec, warn); err != nil {
			warn(err)
		}
		return
	}
	k := seqstate.Key{SA: sa, Fingerprint: cluster.ID(g, spi)}
	c.mu.Lock()
	if c.out[g] == nil {
		c.out[g] = map[uint32]seqstate.Key{}
	}
	c.out[g][sa.SPI] = k
	c.mu.Unlock()
	if _, err := b.PutReserve(g, &rec, k.Fingerprint, seqstate.MinBlock, func(err error) {
		c.reserved(g, k, seqstate.MinBlock, err)
	}); err != nil {
		c.reserved(g, k, 0, err)
	}
}

// reserved takes a new outbound SA's first block, durable up to mark, if
// the SA is still this owner's.
// After a failed write the slow path tries again: read the mark, reserve
// above it (Marks.Resume), off the Batcher's goroutine.
func (c *clusterIKE) reserved(g string, k seqstate.Key, mark uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.owned[g] || c.closed || c.ctx == nil || c.out[g][k.SA.SPI].SA != k.SA {
		return
	}
	now := time.Now()
	switch {
	case err != nil:
		c.log.Warn("cluster: no sequence numbers reserved for a new Child SA yet: trying again", "group", g, "spi", fmt.Sprintf("%08x", k.SA.SPI), "err", err)
		marks := c.marks.Load()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(c.ctx, clusterIKEWriteTimeout)
			defer cancel()
			if err := marks.Resume(ctx, c.p.res, []seqstate.Key{k}, time.Now()); err != nil {
				c.log.Warn("cluster: no sequence numbers reserved for a new Child SA", "group", g, "spi", fmt.Sprintf("%08x", k.SA.SPI), "err", err)
			}
		}()
	default:
		c.p.res.TrackReserved(k, mark, now)
	}
}

func (c *clusterIKE) trackIn(g string, sa *sad.SA) {
	if c.in[g] == nil {
		c.in[g] = map[uint32]*sad.SA{}
	}
	c.in[g][sa.SPI] = sa
}

// deleted runs after the engine deleted a negotiated SA.
func (c *clusterIKE) deleted(sa *sad.SA) {
	g := c.groupOfSA(sa.Name)
	if g == "" {
		return
	}
	c.mu.Lock()
	owned := c.owned[g] && !c.closed
	var id string // an outbound SA's mark goes with its record
	if k, ok := c.out[g][sa.SPI]; ok && sa.Dir == sad.Outbound {
		delete(c.out[g], sa.SPI)
		c.p.res.Remove([]seqstate.Key{k})
		id = k.Fingerprint
	}
	if sa.Dir == sad.Inbound {
		delete(c.in[g], sa.SPI)
		if t := c.tops.Load(); t != nil {
			t.Forget(g, sa.SPI) // its top goes with its record
		}
	}
	c.mu.Unlock()
	if !owned {
		return
	}
	warn := func(err error) {
		c.log.Warn("cluster: Child SA record not deleted", "group", g, "spi", fmt.Sprintf("%08x", sa.SPI), "err", err)
	}
	if b := c.batcher(); b != nil {
		if _, err := b.Delete(g, sa.Dir, sa.SPI, id, warn); err != nil {
			warn(err)
		}
	}
}

// inbound are a group's negotiated inbound SAs (replay tops).
func (c *clusterIKE) inbound(g string) []*sad.SA {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*sad.SA, 0, len(c.in[g]))
	for _, sa := range c.in[g] {
		out = append(out, sa)
	}
	return out
}

// followLocked follows a group's Child SA and IKE SA records into the
// store and the engine (this node is a standby for it).
func (c *clusterIKE) followLocked(g string) {
	if c.follow[g] != nil || c.engine == nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.follow[g] = cancel
	e := c.engine
	gate := c.p.node.Ownership.Group(g).Gate()
	report := func(err error) { c.log.Warn("cluster: replicated state not taken", "group", g, "err", err) }
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := c.p.node.Replicator.Follow(ctx, g, standbyFollower{c: c, f: cluster.StoreFollower{Store: c.st, Gate: gate}}); err != nil {
			report(err)
		}
	}()
	go func() {
		defer c.wg.Done()
		err := c.ikeRep.FollowIKE(ctx, g, func(st ike.IKESAState) error {
			defer st.Wipe()
			c.mu.Lock()
			c.noteReqIDsLocked(g, st)
			c.mu.Unlock()
			if err := e.Import(st); !errors.Is(err, ike.ErrActiveHere) {
				return err
			}
			return nil
		}, report)
		if err != nil {
			report(err)
		}
	}()
}

// standbyFollower installs a group's Child SAs as standby SAs and keeps
// its inbound ones for the replay tops.
type standbyFollower struct {
	c *clusterIKE
	f cluster.StoreFollower
}

func (s standbyFollower) Install(group string, rec cluster.Record) error {
	k := store.Key{SPI: rec.Config.SPI, Dir: rec.Config.Dir, Origin: store.Negotiated}
	if err := s.f.Install(group, rec); err != nil {
		return err
	}
	if sa := s.f.Store.Lookup(k); sa != nil && sa.Dir == sad.Inbound {
		s.c.mu.Lock()
		s.c.trackIn(group, sa)
		s.c.mu.Unlock()
	}
	return nil
}

func (s standbyFollower) Remove(group string, dir sad.Direction, spi uint32) error {
	if dir == sad.Inbound {
		s.c.mu.Lock()
		delete(s.c.in[group], spi)
		s.c.mu.Unlock()
	}
	return s.f.Remove(group, dir, spi)
}

// change takes a group's negotiated tunnels over, or lets them go; it
// runs after the static SAs' change (on the cluster plane's goroutine).
func (c *clusterIKE) change(ctx context.Context, ev groupEvent) {
	g := ev.group
	ctx, cancel := context.WithTimeout(ctx, c.p.cfg.LeaseTTL)
	defer cancel()
	c.mu.Lock()
	if c.engine == nil {
		c.owned[g] = ev.sending
		c.mu.Unlock()
		return
	}
	if !ev.sending {
		c.owned[g] = false
		var ks []seqstate.Key
		for _, k := range c.out[g] {
			ks = append(ks, k)
			k.SA.SetSeqLimit(k.SA.Seq())
		}
		c.p.res.Remove(ks)
		e := c.engine
		c.mu.Unlock()
		// The new owner answers the group's peers now: the engine's IKE SAs
		// of the group go passive, and the replicated state replaces them.
		if n := e.Deactivate(func(conn string) bool { return c.group[conn] == g }); n > 0 {
			c.log.Info("cluster: group's IKE SAs made passive", "group", g, "ike_sas", n)
		}
		c.mu.Lock()
		if !c.owned[g] && !c.closed {
			c.followLocked(g)
		}
		c.mu.Unlock()
		return
	}
	if cancel := c.follow[g]; cancel != nil {
		cancel()
		delete(c.follow, g)
	}
	c.owned[g] = true
	// The standby SAs the followers installed: outbound ones resume above
	// their marks, inbound ones start at the published tops.
	var outs []seqstate.Key
	for _, sa := range c.st.SAs(store.Negotiated) {
		if c.groupOfSA(sa.Name) != g {
			continue
		}
		if sa.Dir == sad.Outbound {
			k := seqstate.Key{SA: sa, Fingerprint: cluster.ID(g, fmt.Sprintf("%08x", sa.SPI))}
			if c.out[g] == nil {
				c.out[g] = map[uint32]seqstate.Key{}
			}
			c.out[g][sa.SPI] = k
			outs = append(outs, k)
		} else {
			c.trackIn(g, sa)
		}
	}
	ins := make([]*sad.SA, 0, len(c.in[g]))
	for _, sa := range c.in[g] {
		ins = append(ins, sa)
	}
	e := c.engine
	c.mu.Unlock()
	if err := c.p.node.Tops.Apply(ctx, g, ins); err != nil {
		c.log.Error("cluster: replay tops of the group's Child SAs not applied", "group", g, "err", err)
	}
	if err := c.p.node.Marks.Resume(ctx, c.p.res, outs, time.Now()); err != nil {
		c.log.Error("cluster: the group's Child SAs not resumed: they stay stopped", "group", g, "err", err)
	}
	n := e.Activate(func(conn string) bool { return c.group[conn] == g })
	c.log.Info("cluster: group's IKE SAs taken over", "group", g, "ike_sas", n, "child_sas_out", len(outs), "child_sas_in", len(ins))
	// Connections that should be up and have no IKE SA here: initiate.
	up := map[string]bool{}
	for _, info := range e.List() {
		up[info.Name] = true
	}
	c.mu.Lock()
	if c.owned[g] && !c.closed {
		c.initiateLocked(g, up)
	}
	c.mu.Unlock()
}
