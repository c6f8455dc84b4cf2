package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// Replicator keeps a group's Child SAs in etcd, sealed: the active writes
// each one it installs (Put) and removes each one it deletes (Delete);
// the standbys follow them (Follow) into their own SA tables.
type Replicator struct {
	o    *Ownership
	seal *Sealer
	// rejected counts records that did not open or decode: tampered,
	// sealed under another cluster key, or moved to another key.
	rejected atomic.Uint64
	// failed counts records the Follower could not install or remove;
	// lastErr is the latest such error.
	failed  atomic.Uint64
	lastErr atomic.Pointer[error]
}

// Failed is the number of records the Follower refused, and the latest
// error.
func (r *Replicator) Failed() (uint64, error) {
	if p := r.lastErr.Load(); p != nil {
		return r.failed.Load(), *p
	}
	return r.failed.Load(), nil
}

func (r *Replicator) fail(err error) {
	if err != nil {
		r.failed.Add(1)
		r.lastErr.Store(&err)
	}
}

// NewReplicator writes and reads records for o's groups under s.
func NewReplicator(o *Ownership, s *Sealer) *Replicator { return &Replicator{o: o, seal: s} }

// Rejected is the number of records Follow refused.
func (r *Replicator) Rejected() uint64 { return r.rejected.Load() }

// ErrNotOwner: the write was refused because this node does not own the
// group (any more).
var ErrNotOwner = errors.New("not the group's owner")

// Put seals rec and writes it for group, if this node still owns it.
func (r *Replicator) Put(ctx context.Context, group string, rec *Record) error {
	r.o.CountWrite(group, WriteRecord)
	g := r.o.groups[group]
	if g == nil {
		return fmt.Errorf("cluster: no group %q", group)
	}
	b, err := rec.encode()
	if err != nil {
		return err
	}
	key := r.o.keys.child(group, rec.Config.Dir, rec.Config.SPI)
	sealed := r.seal.Seal(key, b)
	clear(b)
	resp, err := r.o.cli.Txn(ctx).If(r.o.ownerCmp(g)).Then(clientv3.OpPut(key, string(sealed))).Commit()
	if err != nil {
		return fmt.Errorf("cluster: group %s: sa %08x: %w", group, rec.Config.SPI, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("cluster: group %s: sa %08x: %w", group, rec.Config.SPI, ErrNotOwner)
	}
	return nil
}

// Delete removes an SA's record, if this node still owns the group.
func (r *Replicator) Delete(ctx context.Context, group string, dir sad.Direction, spi uint32) error {
	g := r.o.groups[group]
	if g == nil {
		return fmt.Errorf("cluster: no group %q", group)
	}
	r.o.CountWrite(group, WriteRecord)
	resp, err := r.o.cli.Txn(ctx).If(r.o.ownerCmp(g)).Then(clientv3.OpDelete(r.o.keys.child(group, dir, spi))).Commit()
	if err != nil {
		return fmt.Errorf("cluster: group %s: sa %08x: %w", group, spi, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("cluster: group %s: sa %08x: %w", group, spi, ErrNotOwner)
	}
	return nil
}

// Follower receives a group's records. Install gets a record that is new
// or replaced (it owns the record's keys from then on and wipes them);
// Remove one that is gone.
type Follower interface {
	Install(group string, rec Record) error
	Remove(group string, dir sad.Direction, spi uint32) error
}

// parseChild is the direction and SPI a child key names.
func parseChild(prefix, key string) (sad.Direction, uint32, bool) {
	d, h, ok := strings.Cut(strings.TrimPrefix(key, prefix), "-")
	spi, err := strconv.ParseUint(h, 16, 32)
	if !ok || err != nil || len(h) != 8 {
		return 0, 0, false
	}
	switch d {
	case sad.Inbound.String():
		return sad.Inbound, uint32(spi), true
	case sad.Outbound.String():
		return sad.Outbound, uint32(spi), true
	}
	return 0, 0, false
}

// open opens and decodes the record stored under key; a record that does
// not is counted and skipped.
func (r *Replicator) open(key string, val []byte) (Record, bool) {
	p, err := r.seal.Open(key, val)
	if err != nil {
		r.rejected.Add(1)
		return Record{}, false
	}
	rec, err := decodeRecord(p)
	clear(p)
	if err != nil {
		r.rejected.Add(1)
		return Record{}, false
	}
	return rec, true
}

// Follow hands h every record of group, then every change, until ctx
// ends (nil) or etcd cannot be read. A record whose key does not match
// its contents (direction, SPI) is refused like a tampered one (Rejected);
// h's errors are counted (Failed) and following goes on.
func (r *Replicator) Follow(ctx context.Context, group string, h Follower) error {
	prefix := r.o.keys.children(group)
	known := map[string]bool{}
	deliver := func(key string, val []byte) {
		dir, spi, ok := parseChild(prefix, key)
		if !ok {
			r.rejected.Add(1)
			return
		}
		rec, ok := r.open(key, val)
		if !ok {
			return
		}
		if rec.Config.Dir != dir || rec.Config.SPI != spi {
			rec.wipe()
			r.rejected.Add(1)
			return
		}
		known[key] = true
		r.fail(h.Install(group, rec))
		r.o.countFollowed(group)
	}
	remove := func(key string) {
		delete(known, key)
		if dir, spi, ok := parseChild(prefix, key); ok {
			r.fail(h.Remove(group, dir, spi))
			r.o.countFollowed(group)
		}
	}
	return followPrefix(ctx, r.o.cli, prefix, func(k string) bool { return known[k] }, deliver, remove)
}

// StoreFollower installs a group's negotiated Child SAs into this node's
// store as standby SAs: an outbound one with a sequence limit of 0, so
// nothing is sent under it until this node owns the group and has
// reserved numbers above the group's mark (SeqMarks). Static SAs come
// from every node's own configuration; only their marks are shared.
type StoreFollower struct {
	Store *store.Store
	// Gate, if set, is the group's: an SA gets it before it is installed,
	// so it sends (outbound) or receives (inbound, sad.Gate.Ready) only
	// while this node owns the group.
	Gate *sad.Gate
}

// Install implements Follower: a replaced record replaces the SA.
func (f StoreFollower) Install(group string, rec Record) error {
	defer rec.wipe()
	if rec.Static {
		return nil
	}
	sa, err := sad.New(rec.Config)
	if err != nil {
		return fmt.Errorf("cluster: group %s: %w", group, err)
	}
	if sa.Dir == sad.Outbound {
		sa.SetSeqLimit(0)
	}
	if f.Gate != nil {
		sa.SetGate(f.Gate) // inbound: decrypts only while the group is ready here
	}
	k := store.Key{SPI: sa.SPI, Dir: sa.Dir, Origin: store.Negotiated}
	if f.Store.Lookup(k) != nil {
		f.Store.Delete(k)
	}
	return f.Store.Install(sa, store.Negotiated, rec.Bound)
}

// Remove implements Follower.
func (f StoreFollower) Remove(group string, dir sad.Direction, spi uint32) error {
	k := store.Key{SPI: spi, Dir: dir, Origin: store.Negotiated}
	if f.Store.Lookup(k) == nil {
		return nil
	}
	_, err := f.Store.Delete(k)
	return err
}
