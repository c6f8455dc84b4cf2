package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/sad"
)

// ReplayTops publishes the replay-window tops of a group's inbound SAs
// while this node owns it (/xdpsec/C/groups/G/replay/SPI), and when it
// takes a group over marks each window seen up to the published top, so
// that no packet the old owner may have accepted by then is accepted
// again (RFC 6027 §3.4). Packets the old owner accepted after its last
// publication are the exposure: a replay of one of those within one
// publish interval before a failure is not caught (docs/cluster.md).
// Legitimate packets reordered across the takeover at or below the top
// are dropped as replays and counted as such.
type ReplayTops struct {
	o *Ownership

	mu   sync.Mutex
	sent map[string]uint64 // by key: the top last published
	// synced: by group, the Now() at which the last Publish that left
	// etcd up to date began (status.go: the publish lag).
	synced map[string]int64
}

// NewReplayTops publishes and applies tops for o's groups.
func NewReplayTops(o *Ownership) *ReplayTops {
	return &ReplayTops{o: o, sent: map[string]uint64{}, synced: map[string]int64{}}
}

// Publish writes the tops of the inbound SAs in sas that moved since the
// last call, in one transaction guarded by this node's ownership of
// group; it returns how many it wrote.
func (p *ReplayTops) Publish(ctx context.Context, group string, sas []*sad.SA) (int, error) {
	g := p.o.groups[group]
	if g == nil {
		return 0, fmt.Errorf("cluster: no group %q", group)
	}
	var ops []clientv3.Op
	tops := map[string]uint64{}
	start := Now()
	p.mu.Lock()
	for _, sa := range sas {
		if sa.Dir != sad.Inbound || sa.Replay == nil {
			continue
		}
		key := p.o.keys.replay(group, sa.SPI)
		if top := sa.Replay.Top(); top > p.sent[key] {
			ops = append(ops, clientv3.OpPut(key, strconv.FormatUint(top, 10)))
			tops[key] = top
		}
	}
	p.mu.Unlock()
	if len(ops) == 0 {
		p.markSynced(group, start)
		return 0, nil
	}
	// At most BatchMaxOps tops a transaction (etcd refuses more than
	// --max-txn-ops, 128 by default: a group of more tunnels would never
	// publish otherwise).
	for rest := ops; len(rest) > 0; {
		n := min(len(rest), BatchMaxOps)
		p.o.CountWrite(group, WriteReplay)
		resp, err := p.o.cli.Txn(ctx).If(p.o.ownerCmp(g)).Then(rest[:n]...).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: group %s: replay tops: %w", group, err)
		}
		if !resp.Succeeded {
			return 0, fmt.Errorf("cluster: group %s: replay tops: %w", group, ErrNotOwner)
		}
		rest = rest[n:]
	}
	p.mu.Lock()
	for k, t := range tops {
		p.sent[k] = t
	}
	p.mu.Unlock()
	p.markSynced(group, start)
	return len(ops), nil
}

// Apply reads group's published tops and marks each inbound SA's window
// in sas seen up to its top. Call it on taking the group over, before the
// SAs receive (the group's addresses move after it).
func (p *ReplayTops) Apply(ctx context.Context, group string, sas []*sad.SA) error {
	resp, err := p.o.cli.Get(ctx, p.o.keys.replays(group), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("cluster: group %s: replay tops: %w", group, err)
	}
	tops := map[string]uint64{}
	for _, kv := range resp.Kvs {
		t, err := strconv.ParseUint(string(kv.Value), 10, 64)
		if err != nil {
			return fmt.Errorf("cluster: %s: %w", kv.Key, err)
		}
		tops[string(kv.Key)] = t
	}
	for _, sa := range sas {
		if sa.Dir != sad.Inbound || sa.Replay == nil {
			continue
		}
		key := p.o.keys.replay(group, sa.SPI)
		if t := tops[key]; t > 0 {
			sa.Replay.SeenUpTo(t)
			p.mu.Lock()
			p.sent[key] = t
			p.mu.Unlock()
		}
	}
	return nil
}

// Run publishes, every interval, the tops of each group this node may
// send for, with sas giving a group's SAs, until ctx ends. Errors go to
// report (a lost group's refusals included).
func (p *ReplayTops) Run(ctx context.Context, interval time.Duration, sas func(group string) []*sad.SA, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for name, g := range p.o.groups {
				if !g.MaySend(Now()) {
					continue
				}
				// A slow etcd delays the next publication, not loses it.
				pctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
				if _, err := p.Publish(pctx, name, sas(name)); err != nil && ctx.Err() == nil && report != nil {
					report(err)
				}
				cancel()
			}
		}
	}
}
