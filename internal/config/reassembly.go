package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Reassembly sizes each worker's reassembly of outer IPv4/IPv6 fragments
// of ESP and ESP-in-UDP (fastpath/reasm); zero fields take its defaults
// (64 datagrams, 8 per source, 30 s).
type Reassembly struct {
	// Timeout is how long an incomplete datagram (and one dropped for
	// overlapping fragments, whose late fragments are refused meanwhile)
	// keeps its place.
	Timeout time.Duration
	// Datagrams is how many datagrams a worker reassembles at once, each
	// holding a frame's worth of memory; a new one past it evicts the
	// oldest. PerSource is how many of them one source address may hold.
	Datagrams, PerSource int
}

// MaxReassemblyDatagrams bounds reassembly.datagrams: 4096 frames of
// memory (8 MiB) per worker.
const MaxReassemblyDatagrams = 4096

func (d *decoder) reassembly(n *yaml.Node, c *Config) {
	r := &c.Reassembly
	var perNode *yaml.Node
	d.mapping(n, "reassembly", []string{"timeout", "datagrams", "per_source"}, func(k string, v *yaml.Node) {
		f := "reassembly." + k
		switch k {
		case "timeout":
			r.Timeout = d.duration(v, f)
			if r.Timeout < 100*time.Millisecond || r.Timeout > 2*time.Minute {
				d.errf(v, f, "%v is not within 100ms..2m", r.Timeout)
				r.Timeout = 0
			}
		case "datagrams":
			if x, ok := d.integer(v, f, 1, MaxReassemblyDatagrams); ok {
				r.Datagrams = int(x)
			}
		case "per_source":
			perNode = v
			if x, ok := d.integer(v, f, 1, MaxReassemblyDatagrams); ok {
				r.PerSource = int(x)
			}
		}
	})
	if perNode != nil && r.Datagrams > 0 && r.PerSource > r.Datagrams {
		d.errf(perNode, "reassembly.per_source", "%d is more than reassembly.datagrams (%d)", r.PerSource, r.Datagrams)
	}
}
