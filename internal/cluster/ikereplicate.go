package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/ike"
)

// IKEReplicator keeps a group's IKE SAs in etcd, sealed: the active writes
// each change (Put, through an IKEWriter that coalesces message-ID-only
// changes) and removes a deleted SA (Delete); the standbys follow them
// (FollowIKE) into their engines (ike.Engine.Import).
type IKEReplicator struct {
	o    *Ownership
	seal *Sealer
	// puts and dels count the writes that reached etcd; rejected counts
	// records that did not open, decode or match their key.
	puts, dels, rejected atomic.Uint64
}

// NewIKEReplicator writes and reads IKE SA records for o's groups under s.
func NewIKEReplicator(o *Ownership, s *Sealer) *IKEReplicator { return &IKEReplicator{o: o, seal: s} }

// Writes is the number of IKE SA records written and deleted.
func (r *IKEReplicator) Writes() (puts, deletes uint64) { return r.puts.Load(), r.dels.Load() }

// Rejected is the number of records FollowIKE refused.
func (r *IKEReplicator) Rejected() uint64 { return r.rejected.Load() }

// Put seals st and writes it for group, if this node still owns it (a
// Deleted st deletes the record).
func (r *IKEReplicator) Put(ctx context.Context, group string, st *ike.IKESAState) error {
	return r.PutMany(ctx, group, []*ike.IKESAState{st})
}

// PutMany is Put for several IKE SAs of group in one transaction (at most
// BatchMaxOps of them).
func (r *IKEReplicator) PutMany(ctx context.Context, group string, sts []*ike.IKESAState) error {
	g := r.o.groups[group]
	if g == nil {
		return fmt.Errorf("cluster: no group %q", group)
	}
	ops := make([]clientv3.Op, 0, len(sts))
	for _, st := range sts {
		key := r.o.keys.ikeSA(group, st.SPIi, st.SPIr)
		if st.Deleted {
			ops = append(ops, clientv3.OpDelete(key))
			continue
		}
		b, err := encodeIKE(st)
		if err != nil {
			return err
		}
		sealed := r.seal.Seal(key, b)
		clear(b)
		ops = append(ops, clientv3.OpPut(key, string(sealed)))
	}
	what := fmt.Sprintf("%d ike sas", len(sts))
	if len(sts) == 1 {
		what = fmt.Sprintf("ike sa %016x_i", sts[0].SPIi)
	}
	resp, err := r.o.cli.Txn(ctx).If(r.o.ownerCmp(g)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("cluster: group %s: %s: %w", group, what, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("cluster: group %s: %s: %w", group, what, ErrNotOwner)
	}
	for _, st := range sts {
		if st.Deleted {
			r.dels.Add(1)
		} else {
			r.puts.Add(1)
		}
		r.o.CountWrite(group, WriteRecord) // show cluster, metrics: an SA record (IKE SAs too)
	}
	return nil
}

// parseIKEKey is the SPIs an ike key names.
func parseIKEKey(prefix, key string) (spiI, spiR uint64, ok bool) {
	i, rs, ok := strings.Cut(strings.TrimPrefix(key, prefix), "-")
	if !ok || len(i) != 16 || len(rs) != 16 {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(i, 16, 64)
	b, err2 := strconv.ParseUint(rs, 16, 64)
	return a, b, err1 == nil && err2 == nil
}

// FollowIKE hands apply every IKE SA of group, then every change, until ctx
// ends (nil) or etcd cannot be read: a new or changed record as its state
// (apply owns and wipes it), a removed one as a Deleted state. A record
// that does not open, decode or match its key is counted (Rejected) and
// skipped; apply's errors go to report.
func (r *IKEReplicator) FollowIKE(ctx context.Context, group string, apply func(ike.IKESAState) error, report func(error)) error {
	prefix := r.o.keys.ikes(group)
	known := map[string]ike.IKESAState{} // key -> the Deleted state that ends it
	put := func(key string, val []byte) {
		spiI, spiR, ok := parseIKEKey(prefix, key)
		if !ok {
			r.rejected.Add(1)
			return
		}
		p, err := r.seal.Open(key, val)
		if err != nil {
			r.rejected.Add(1)
			return
		}
		st, err := decodeIKE(p)
		clear(p)
		if err != nil || st.SPIi != spiI || st.SPIr != spiR {
			st.Wipe()
			r.rejected.Add(1)
			return
		}
		known[key] = ike.IKESAState{Connection: st.Connection, Initiator: st.Initiator, SPIi: spiI, SPIr: spiR, Deleted: true}
		r.o.countFollowed(group)
		if err := apply(st); err != nil && report != nil {
			report(err)
		}
	}
	del := func(key string) {
		st, ok := known[key]
		if !ok {
			return
		}
		delete(known, key)
		r.o.countFollowed(group)
		if err := apply(st); err != nil && report != nil {
			report(err)
		}
	}
	return followPrefix(ctx, r.o.cli, prefix, func(key string) bool { _, ok := known[key]; return ok }, put, del)
}

// followPrefix lists the keys under prefix and hands them to put, removes
// (del) those of an earlier listing that are gone (has: still known), then
// watches; a watch that fails (compaction) lists again. It returns nil
// when ctx ends, or etcd's error.
func followPrefix(ctx context.Context, cli *clientv3.Client, prefix string, has func(string) bool, put func(string, []byte), del func(string)) error {
	var listed map[string]bool
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cluster: %s: %w", prefix, err)
		}
		now := map[string]bool{}
		for _, kv := range resp.Kvs {
			now[string(kv.Key)] = true
			put(string(kv.Key), kv.Value)
		}
		for k := range listed {
			if !now[k] && has(k) {
				del(k)
			}
		}
		listed = now
		wctx, cancel := context.WithCancel(ctx)
		for wr := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break // compacted or lost: list again
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					delete(listed, k)
					del(k)
				} else {
					listed[k] = true
					put(k, ev.Kv.Value)
				}
			}
		}
		cancel()
	}
	return nil
}

// IKEWriter writes what an engine exports (ike.Config.Export) for the
// groups' IKE SAs: a state that changed keys, addresses or Child SAs
// (Urgent) or a deletion at once, one that only moved message IDs at
// most once per interval per IKE SA (the latest; a standby tolerates a
// lag of one exchange each way, see ike.Engine.Activate). Offer never
// blocks the engine.
type IKEWriter struct {
	r        *IKEReplicator
	interval time.Duration
	report   func(error)

	mu      sync.Mutex
	pending map[ikeKey]*pendingIKE
	kick    chan struct{}
	// coalesced counts states replaced by a later one before being written;
	// txns the transactions written (several IKE SAs each, per group).
	coalesced, txns atomic.Uint64
}

type ikeKey struct {
	group      string
	spiI, spiR uint64
}

type pendingIKE struct {
	st     ike.IKESAState
	urgent bool
}

// DefaultIKEWriteInterval is how often at most an IKE SA whose message IDs
// alone moved is written: DPD every 30 s moves them twice a minute, so a
// steady tunnel costs about 2 writes a minute whatever the interval; it
// bounds a storm of exchanges that change no keys.
const DefaultIKEWriteInterval = 500 * time.Millisecond

// NewIKEWriter makes a writer; report hears the writes that failed (not
// owner, etcd away). Run it.
func (r *IKEReplicator) NewIKEWriter(interval time.Duration, report func(error)) *IKEWriter {
	if interval <= 0 {
		interval = DefaultIKEWriteInterval
	}
	return &IKEWriter{r: r, interval: interval, report: report, pending: map[ikeKey]*pendingIKE{}, kick: make(chan struct{}, 1)}
}

// Coalesced is the number of states a later one replaced before they
// were written.
func (w *IKEWriter) Coalesced() uint64 { return w.coalesced.Load() }

// Txns is the number of transactions the writer committed or tried.
func (w *IKEWriter) Txns() uint64 { return w.txns.Load() }

// Offer queues st (the writer owns it from now on) for group.
func (w *IKEWriter) Offer(group string, st ike.IKESAState) {
	k := ikeKey{group, st.SPIi, st.SPIr}
	urgent := st.Urgent || st.Deleted
	w.mu.Lock()
	if p := w.pending[k]; p != nil {
		p.st.Wipe()
		w.coalesced.Add(1)
		urgent = urgent || p.urgent
	}
	w.pending[k] = &pendingIKE{st: st, urgent: urgent}
	w.mu.Unlock()
	if urgent {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// Run writes until ctx ends: the urgent states at once, the others at
// each interval's tick.
func (w *IKEWriter) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			for k, p := range w.pending {
				p.st.Wipe()
				delete(w.pending, k)
			}
			w.mu.Unlock()
			return
		case <-w.kick:
			w.flush(ctx, true)
		case <-t.C:
			w.flush(ctx, false)
		}
	}
}

// flush writes the pending states (only the urgent ones if urgentOnly).
func (w *IKEWriter) flush(ctx context.Context, urgentOnly bool) {
	w.mu.Lock()
	var batch []ikeKey
	var sts []*pendingIKE
	for k, p := range w.pending {
		if urgentOnly && !p.urgent {
			continue
		}
		batch, sts = append(batch, k), append(sts, p)
		delete(w.pending, k)
	}
	w.mu.Unlock()
	// One transaction per group and BatchMaxOps IKE SAs: a storm of
	// exchanges on many tunnels costs few round trips.
	byGroup := map[string][]*ike.IKESAState{}
	var groups []string
	for i, k := range batch {
		if byGroup[k.group] == nil {
			groups = append(groups, k.group)
		}
		byGroup[k.group] = append(byGroup[k.group], &sts[i].st)
	}
	for _, g := range groups {
		all := byGroup[g]
		for len(all) > 0 {
			n := min(len(all), BatchMaxOps)
			wctx, cancel := context.WithTimeout(ctx, w.r.o.ttl)
			err := w.r.PutMany(wctx, g, all[:n])
			cancel()
			w.txns.Add(1)
			if err != nil && w.report != nil && ctx.Err() == nil {
				w.report(err)
			}
			all = all[n:]
		}
	}
	for _, p := range sts {
		p.st.Wipe()
	}
}

// IKE returns an IKEReplicator for the same groups, under the same sealer.
func (r *Replicator) IKE() *IKEReplicator { return NewIKEReplicator(r.o, r.seal) }
