package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/internal/seqstate"
)

// SeqMarks keeps outbound sequence-number high-water marks in etcd, one
// per SA and group: /xdpsec/C/groups/G/seq/ID, ID an SA's SPI in hex
// (negotiated) or its key's fingerprint (static, seqstate.Fingerprint).
// A mark is raised by a transaction that compares the value it raises
// from, so two writers never get overlapping blocks, and (for an owner)
// that this node still owns the group, so a deposed owner reserves
// nothing. The Reserver (package seqstate) calls Save before it lets an
// SA use a block: every number sent is at or below a mark in etcd, and a
// new owner starts above the highest one (RFC 6027 §3.2).
type SeqMarks struct {
	cli  *clientv3.Client
	keys keys
	// guard is the owner check of a group's writes; nil: none (tests).
	guard func(group string) (clientv3.Cmp, bool)

	mu   sync.Mutex
	last map[string]uint64 // by "GROUP/ID": the mark as this node last read or wrote it
	// stale: the last raise's outcome is unknown; read the mark again.
	stale map[string]bool
	// raised: Now() of each mark's last raise by this node (status.go);
	// count: the write counter (Ownership.CountWrite; nil: none).
	raised map[string]int64
	count  func(group string, kind WriteKind)
}

// NewSeqMarks keeps marks for o's groups, written only while o owns them.
func NewSeqMarks(o *Ownership) *SeqMarks {
	m := &SeqMarks{cli: o.cli, keys: o.keys, last: map[string]uint64{}, stale: map[string]bool{}, raised: map[string]int64{}, count: o.CountWrite}
	m.guard = func(group string) (clientv3.Cmp, bool) {
		g := o.groups[group]
		if g == nil {
			return clientv3.Cmp{}, false
		}
		return o.ownerCmp(g), true
	}
	return m
}

// ID is the Reserver id of an SA's mark in group: "GROUP/SUB".
func ID(group, sub string) string { return group + "/" + sub }

// ErrMarkMoved: the mark was not where this node last saw it: another
// writer raised it (a second owner, which the fencing should make
// impossible). A node that lost the group gets ErrNotOwner.
var ErrMarkMoved = errors.New("sequence mark moved under us")

func (m *SeqMarks) key(id string) (string, string, error) {
	group, sub, ok := strings.Cut(id, "/")
	if !ok || group == "" || sub == "" || strings.Contains(sub, "/") {
		return "", "", fmt.Errorf("cluster: bad mark id %q", id)
	}
	return group, m.keys.seqs(group) + sub, nil
}

// Load reads the mark id (0 if none) and remembers it as the base of the
// next Save.
func (m *SeqMarks) Load(ctx context.Context, id string) (uint64, error) {
	_, key, err := m.key(id)
	if err != nil {
		return 0, err
	}
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("cluster: mark %s: %w", id, err)
	}
	var mark uint64
	if len(resp.Kvs) > 0 {
		if mark, err = strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64); err != nil {
			return 0, fmt.Errorf("cluster: mark %s: %w", id, err)
		}
	}
	m.mu.Lock()
	m.last[id] = mark
	delete(m.stale, id)
	m.mu.Unlock()
	return mark, nil
}

// raise sets id's mark from from to to, if it is still from.
func (m *SeqMarks) raise(ctx context.Context, id string, from, to uint64) error {
	group, key, err := m.key(id)
	if err != nil {
		return err
	}
	if to <= from {
		return fmt.Errorf("cluster: mark %s: %d is not above %d", id, to, from)
	}
	cmp := clientv3.Compare(clientv3.Value(key), "=", strconv.FormatUint(from, 10))
	if from == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	put := clientv3.OpPut(key, strconv.FormatUint(to, 10))
	if m.count != nil {
		m.count(group, WriteSeq)
	}
	var moved bool
	if m.guard == nil {
		resp, err := m.cli.Txn(ctx).If(cmp).Then(put).Commit()
		if err != nil {
			return fmt.Errorf("cluster: mark %s: %w", id, err)
		}
		moved = !resp.Succeeded
	} else {
		// Ownership outside, the mark inside: the two refusals differ.
		g, ok := m.guard(group)
		if !ok {
			return fmt.Errorf("cluster: mark %s: no group %q", id, group)
		}
		resp, err := m.cli.Txn(ctx).If(g).Then(clientv3.OpTxn([]clientv3.Cmp{cmp}, []clientv3.Op{put}, nil)).Commit()
		if err != nil {
			return fmt.Errorf("cluster: mark %s: %w", id, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("cluster: mark %s: %w", id, ErrNotOwner)
		}
		moved = !resp.Responses[0].GetResponseTxn().Succeeded
	}
	if moved {
		return fmt.Errorf("cluster: mark %s: %w", id, ErrMarkMoved)
	}
	m.mu.Lock()
	m.last[id] = to
	if m.raised != nil {
		m.raised[id] = Now()
	}
	m.mu.Unlock()
	return nil
}

// saveTimeout bounds one Save: the Reserver renews with half a block
// (ReserveAhead/2 of traffic) left, so a slower etcd costs drops.
const saveTimeout = seqstate.ReserveAhead / 2

// Save makes mark durable for id, raising it from where this node last
// read or wrote it: seqstate.Reserver's save.
//
// A raise whose outcome is unknown (a timeout: it may have committed) or
// that found the mark moved leaves the remembered mark stale: the next
// Save reads it again and raises from there. While this node owns the
// group only its own raises move the mark (they compare the owner token),
// so the mark read back is one of its own.
func (m *SeqMarks) Save(id string, mark uint64) error {
	m.mu.Lock()
	from, ok := m.last[id]
	stale := m.stale[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("cluster: mark %s: not loaded", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if stale {
		cur, err := m.Load(ctx, id)
		if err != nil {
			return err
		}
		if cur >= mark {
			return nil // durable already (an earlier raise committed after all)
		}
		from = cur
	}
	err := m.raise(ctx, id, from, mark)
	if err != nil && !errors.Is(err, ErrNotOwner) {
		m.mu.Lock()
		m.stale[id] = true
		m.mu.Unlock()
	}
	return err
}

// Reserve takes the next n numbers of id for this node, whoever else
// raises the mark meanwhile: it returns the block (first, last] it raised
// the mark over. (A Reserver raises marks with Save; Reserve is for a
// writer that may race others, and for tests of the compare-and-swap.)
func (m *SeqMarks) Reserve(ctx context.Context, id string, n uint64) (first, last uint64, err error) {
	for {
		cur, err := m.Load(ctx, id)
		if err != nil {
			return 0, 0, err
		}
		err = m.raise(ctx, id, cur, cur+n)
		if err == nil {
			return cur + 1, cur + n, nil
		}
		if !errors.Is(err, ErrMarkMoved) {
			return 0, 0, err
		}
	}
}

// Resume takes a group's outbound SAs over when this node has become its
// owner, before any of them may send: each SA's mark is read (the
// Fingerprint of each Key is its id, ID(group, sub)), the SA moved past
// it (Reserver.Track), and a first block reserved above it. An SA whose
// mark cannot be read stays at a limit of 0 and the error says which.
func (m *SeqMarks) Resume(ctx context.Context, r *seqstate.Reserver, ks []seqstate.Key, now time.Time) error {
	var errs []error
	for _, k := range ks {
		k.SA.SetSeqLimit(0)
		mark, err := m.Load(ctx, k.Fingerprint)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Track(k, mark, now)
	}
	return errors.Join(append(errs, r.Refresh(now))...)
}
