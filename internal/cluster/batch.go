package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/sad"
)

// Batcher writes the records of many negotiated Child SAs, and the first
// sequence block of each outbound one, in few etcd transactions: a
// rekey storm of N tunnels costs a handful of round trips, not several
// per SA (issue 11, docs/cluster.md "Rekey storms"). Writes are queued
// (tickets, in order) and committed by one goroutine (Run): each batch is
// one transaction per group, guarded by this node's ownership of it,
// while the next batch gathers. A record and its SA's first mark go in
// the same transaction, so a standby never sees one without the other.
//
// The order the IKE engine relies on is kept by its caller: the message
// that lets the peer use an SA leaves only once the ticket of the SA's
// record is settled (Settled, Notify: the daemon holds the engine's
// outgoing messages until then), and an outbound SA sends nothing before
// its block is durable (its limit stays 0 until the done callback of
// PutReserve raises it).
type Batcher struct {
	o    *Ownership
	seal *Sealer
	m    *SeqMarks
	// MaxOps bounds a transaction's operations (etcd's --max-txn-ops is
	// 128 by default); Timeout one transaction.
	maxOps  int
	timeout time.Duration

	mu     sync.Mutex
	queue  []*batchOp
	issued uint64
	kick   chan struct{}
	// settled: every ticket up to it is committed or failed.
	settled atomic.Uint64
	notify  func(settled uint64)

	txns, ops atomic.Uint64
}

type batchOp struct {
	ticket uint64
	group  string
	key    string // the record's key
	op     clientv3.Op
	// A first sequence block: mark is the mark's key, block its value
	// when the mark does not exist yet; done hears the durable mark (the
	// block, or the mark found) or the error. A deletion: mark is the
	// SA's mark or replay top, deleted with its record.
	markID  string
	mark    string
	block   uint64
	done    func(err error)
	onError func(error)
}

// BatchMaxOps is a batch's bound of operations per transaction, below
// etcd's default --max-txn-ops (128).
const BatchMaxOps = 100

// NewBatcher batches the record and mark writes of o's groups.
func NewBatcher(o *Ownership, s *Sealer, m *SeqMarks, timeout time.Duration) *Batcher {
	return &Batcher{o: o, seal: s, m: m, maxOps: BatchMaxOps, timeout: timeout, kick: make(chan struct{}, 1)}
}

// Batcher is a Batcher for the same groups, under the same sealer, with
// marks m.
func (r *Replicator) Batcher(m *SeqMarks, timeout time.Duration) *Batcher {
	return NewBatcher(r.o, r.seal, m, timeout)
}

// Notify sets f, called (on the Batcher's goroutine) after each batch
// with the ticket every write up to which is settled. Set it before Run.
func (b *Batcher) Notify(f func(settled uint64)) { b.notify = f }

// Issued is the latest ticket handed out; Settled the latest up to which
// every write is committed or failed.
func (b *Batcher) Issued() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.issued
}

// Settled: see Issued.
func (b *Batcher) Settled() uint64 { return b.settled.Load() }

// Stats are the transactions committed (or tried) and the operations in
// them.
func (b *Batcher) Stats() (txns, ops uint64) { return b.txns.Load(), b.ops.Load() }

func (b *Batcher) enqueue(op *batchOp) uint64 {
	b.mu.Lock()
	b.issued++
	op.ticket = b.issued
	b.queue = append(b.queue, op)
	t := b.issued
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return t
}

// sealRecord is rec sealed under its key's name.
func (b *Batcher) sealRecord(group string, rec *Record) (string, string, error) {
	if b.o.groups[group] == nil {
		return "", "", fmt.Errorf("cluster: no group %q", group)
	}
	p, err := rec.encode()
	if err != nil {
		return "", "", err
	}
	key := b.o.keys.child(group, rec.Config.Dir, rec.Config.SPI)
	sealed := b.seal.Seal(key, p)
	clear(p)
	return key, string(sealed), nil
}

// Put queues rec's write (sealed now: rec's keys may be wiped when it
// returns); onError hears a failure.
func (b *Batcher) Put(group string, rec *Record, onError func(error)) (uint64, error) {
	key, val, err := b.sealRecord(group, rec)
	if err != nil {
		return 0, err
	}
	return b.enqueue(&batchOp{group: group, key: key, op: clientv3.OpPut(key, val), onError: onError}), nil
}

// PutReserve queues rec's write and, in the same transaction, the first
// block of its outbound SA's mark id (ID(group, sub)): the mark is set to
// block whatever it held. rec must carry keys no one used before (a new
// negotiated SA): a mark found under its SPI is then a stale one of
// other keys, which the record it belonged to (same key, overwritten in
// the same transaction) no longer needs; and since record and mark
// commit together, the SA may use its first block before they do (no
// other node knows the SA until then, and a new owner resumes above the
// block after).
// done runs on the Batcher's goroutine once the transaction is settled;
// SeqMarks remembers the mark for the next raise.
func (b *Batcher) PutReserve(group string, rec *Record, id string, block uint64, done func(err error)) (uint64, error) {
	key, val, err := b.sealRecord(group, rec)
	if err != nil {
		return 0, err
	}
	_, mkey, err := b.m.key(id)
	if err != nil {
		return 0, err
	}
	return b.enqueue(&batchOp{group: group, key: key, op: clientv3.OpPut(key, val), markID: id, mark: mkey, block: block, done: done}), nil
}

// Delete queues the removal of an SA's record and, for an outbound SA
// (id not empty), of its mark, for an inbound one of its published
// replay top: an SA deleted for good leaves nothing behind in etcd.
func (b *Batcher) Delete(group string, dir sad.Direction, spi uint32, id string, onError func(error)) (uint64, error) {
	if b.o.groups[group] == nil {
		return 0, fmt.Errorf("cluster: no group %q", group)
	}
	key := b.o.keys.child(group, dir, spi)
	op := &batchOp{group: group, key: key, op: clientv3.OpDelete(key), onError: onError}
	if dir == sad.Inbound {
		op.mark = b.o.keys.replay(group, spi)
	}
	if id != "" {
		_, mkey, err := b.m.key(id)
		if err != nil {
			return 0, err
		}
		op.markID, op.mark = id, mkey
	}
	return b.enqueue(op), nil
}

// Run commits batches until ctx ends; what is queued then fails.
func (b *Batcher) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			b.mu.Lock()
			q := b.queue
			b.queue = nil
			b.mu.Unlock()
			b.settle(q, ctx.Err())
			return
		case <-b.kick:
		}
		for {
			batch := b.take()
			if len(batch) == 0 {
				break
			}
			b.commit(ctx, batch)
		}
	}
}

// take is the next batch: the queue's head, at most maxOps operations
// per group, and no key twice (a second write of a key waits for the
// next batch, so the order of the writes of one key is kept).
func (b *Batcher) take() []*batchOp {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[string]bool{}
	ops := map[string]int{}
	n := 0
	for ; n < len(b.queue); n++ {
		op := b.queue[n]
		cost := 1
		if op.mark != "" {
			cost = 2
		}
		if seen[op.key] || (op.mark != "" && seen[op.mark]) || ops[op.group]+cost > b.maxOps {
			break
		}
		seen[op.key] = true
		if op.mark != "" {
			seen[op.mark] = true
		}
		ops[op.group] += cost
	}
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	return batch
}

// commit writes a batch, one transaction per group, and settles it.
func (b *Batcher) commit(ctx context.Context, batch []*batchOp) {
	byGroup := map[string][]*batchOp{}
	var order []string
	for _, op := range batch {
		if byGroup[op.group] == nil {
			order = append(order, op.group)
		}
		byGroup[op.group] = append(byGroup[op.group], op)
	}
	errs := map[string]error{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, g := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.commitGroup(ctx, g, byGroup[g])
			mu.Lock()
			errs[g] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, op := range batch {
		err := errs[op.group]
		if op.done != nil {
			if err == nil {
				b.m.remember(op.markID, op.block)
			}
			op.done(err)
		} else if op.markID != "" && err == nil {
			b.m.forget(op.markID)
		}
		if err != nil && op.onError != nil {
			op.onError(err)
		}
	}
	b.settled.Store(batch[len(batch)-1].ticket)
	if b.notify != nil {
		b.notify(batch[len(batch)-1].ticket)
	}
}

func (b *Batcher) commitGroup(ctx context.Context, group string, ops []*batchOp) error {
	g := b.o.groups[group]
	var then []clientv3.Op
	for _, op := range ops {
		b.o.CountWrite(group, WriteRecord)
		then = append(then, op.op)
		switch {
		case op.done != nil:
			b.o.CountWrite(group, WriteSeq)
			then = append(then, clientv3.OpPut(op.mark, strconv.FormatUint(op.block, 10)))
		case op.mark != "":
			then = append(then, clientv3.OpDelete(op.mark))
		}
	}
	b.txns.Add(1)
	b.ops.Add(uint64(len(then)))
	tctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	resp, err := b.o.cli.Txn(tctx).If(b.o.ownerCmp(g)).Then(then...).Commit()
	if err != nil {
		return fmt.Errorf("cluster: group %s: %d SA records: %w", group, len(ops), err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("cluster: group %s: %d SA records: %w", group, len(ops), ErrNotOwner)
	}
	return nil
}

// settle fails ops that will never be written.
func (b *Batcher) settle(ops []*batchOp, err error) {
	for _, op := range ops {
		if op.done != nil {
			op.done(err)
		} else if op.onError != nil {
			op.onError(err)
		}
	}
	if len(ops) > 0 {
		b.settled.Store(ops[len(ops)-1].ticket)
		if b.notify != nil {
			b.notify(ops[len(ops)-1].ticket)
		}
	}
}

// remember takes mark as id's, durable (a Batcher wrote or read it): the
// next Save raises from it.
func (m *SeqMarks) remember(id string, mark uint64) {
	m.mu.Lock()
	m.last[id] = mark
	delete(m.stale, id)
	if m.raised != nil {
		m.raised[id] = Now()
	}
	m.mu.Unlock()
}

// forget drops what this node knows of id's mark (deleted with its SA).
func (m *SeqMarks) forget(id string) {
	m.mu.Lock()
	delete(m.last, id)
	delete(m.stale, id)
	if m.raised != nil {
		delete(m.raised, id)
	}
	m.mu.Unlock()
}

// Forget drops what p last published for an inbound SA of group that is
// gone (its top was deleted with its record): a later SA with the same
// SPI publishes from its own first top.
func (p *ReplayTops) Forget(group string, spi uint32) {
	p.mu.Lock()
	delete(p.sent, p.o.keys.replay(group, spi))
	p.mu.Unlock()
}
