package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestFirstPacket: with every neighbour on both gateways forgotten, the
// very first ping through the tunnel (IPv4, then IPv6) is answered: each
// gateway holds the packet while the kernel resolves the next hop (the
// peer on the WAN, the host on the LAN) and sends it then, instead of
// dropping it. Four resolutions per ping: gwA→gwB, gwB→hostB, and back.
func TestFirstPacket(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b, _ := l.configs(t, tunnelOpts{})
	for _, g := range []string{"gA", "gB"} {
		if out, err := l.run(g, 5*time.Second, "ip", "neigh", "flush", "all"); err != nil {
			t.Fatalf("ip neigh flush in %s: %v\n%s", g, err, out)
		}
	}
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	for _, dst := range []string{hostB4, hostB6} {
		out, _ := l.run("hA", 10*time.Second, "ping", "-n", "-c", "1", "-W", "5", dst)
		if !strings.Contains(out, " 1 received") {
			t.Errorf("the first ping to %s was lost:\n%s\n%s", dst, out, l.diagnose())
		}
	}
	var held, released uint64
	for _, g := range []*gateway{gA, gB} {
		for _, w := range g.showStats(t).Workers {
			held += w.Counters["held"]
			released += w.Counters["released"]
		}
	}
	t.Logf("held %d packets for neighbours, released %d", held, released)
	if held == 0 || released != held {
		t.Errorf("held %d, released %d: want the first packets held and all released", held, released)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}
