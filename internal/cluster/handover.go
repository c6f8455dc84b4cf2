package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A graceful hand-over (Move) loses nothing on the wire when the daemon
// forwards the group's frames that still reach the old owner to the new
// one, which holds them until it is ready (package fastpath, gatehold.go),
// and when the old owner's last replay tops are in etcd before the mark:
// the new owner's windows then start exactly where the old owner stopped
// receiving. HandOver are the hooks for that; the nodes' MACs, which the
// forwarding needs, are kept under /xdpsec/CLUSTER/macs/NODE.

// HandOver are an Ownership's hooks around letting a group go (Move and a
// release at Close). Each runs on the group's loop.
type HandOver struct {
	// Forward runs before the owner stops sending for a move of group to
	// node to (the new owner's frames forwarded from the first one this
	// node refuses).
	Forward func(group, to string)
	// Final runs after the owner stopped and its last batch is through
	// (Quiesce), before the mark that lets the next owner take the group
	// is written: the place for the exact last replay tops.
	Final func(group string)
}

func (k keys) macs() string        { return fmt.Sprintf("/xdpsec/%s/macs/", k.cluster) }
func (k keys) mac(n string) string { return k.macs() + n }

// NodeMACs are a node's MACs on its WAN and LAN interfaces.
type NodeMACs [2][6]byte

// PutMACs records this node's WAN and LAN MACs for the others' forwarding
// (no lease: a node's MACs outlive its session).
func (o *Ownership) PutMACs(ctx context.Context, wan, lan net.HardwareAddr) error {
	if len(wan) != 6 || len(lan) != 6 {
		return fmt.Errorf("cluster: MACs %v %v: not Ethernet", wan, lan)
	}
	_, err := o.cli.Put(ctx, o.keys.mac(o.node), wan.String()+" "+lan.String())
	return err
}

// MACs reads every node's recorded MACs, by node.
func (o *Ownership) MACs(ctx context.Context) (map[string]NodeMACs, error) {
	resp, err := o.cli.Get(ctx, o.keys.macs(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("cluster: MACs: %w", err)
	}
	out := map[string]NodeMACs{}
	for _, kv := range resp.Kvs {
		f := strings.Fields(string(kv.Value))
		if len(f) != 2 {
			continue
		}
		var m NodeMACs
		ok := true
		for i := range f {
			hw, err := net.ParseMAC(f[i])
			if err != nil || len(hw) != 6 {
				ok = false
				break
			}
			copy(m[i][:], hw)
		}
		if ok {
			out[strings.TrimPrefix(string(kv.Key), o.keys.macs())] = m
		}
	}
	return out, nil
}
