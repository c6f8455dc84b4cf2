package cluster

import (
	"fmt"

	"github.com/xdpsec/xdpsec/sad"
)

// The key layout in etcd, under /xdpsec/CLUSTER/groups/GROUP/:
//
//	owner              the group's owner: "NODE TERM", or "released"
//	child/in-SPI       a sealed inbound Child SA (SPI: 8 hex digits)
//	child/out-SPI      a sealed outbound Child SA
//	seq/ID             an outbound SA's sequence high-water mark (decimal);
//	                   ID: the SPI in hex, or a static key's fingerprint
//	replay/SPI         an inbound SA's published replay-window top (decimal)
//
// Marks and tops are not secret (they travel in clear in every packet);
// SAs are sealed (Sealer), bound to their key's name.
type keys struct {
	cluster string
}

func (k keys) group(g string) string { return fmt.Sprintf("/xdpsec/%s/groups/%s/", k.cluster, g) }
func (k keys) owner(g string) string { return k.group(g) + "owner" }
func (k keys) children(g string) string {
	return k.group(g) + "child/"
}
func (k keys) child(g string, dir sad.Direction, spi uint32) string {
	return fmt.Sprintf("%s%s-%08x", k.children(g), dir, spi)
}
func (k keys) seqs(g string) string               { return k.group(g) + "seq/" }
func (k keys) replays(g string) string            { return k.group(g) + "replay/" }
func (k keys) replay(g string, spi uint32) string { return fmt.Sprintf("%s%08x", k.replays(g), spi) }
