package nic

import "slices"

// AssignCPUs picks a CPU for each of the n workers under `cpus: auto`: the
// first CPU its queue's interrupt is affined to, or, for a queue without an
// interrupt (veth), the online CPUs in turn.
func AssignCPUs(n int, queues []QueueCPU, online []int) []int {
	cpus := make([]int, n)
	for q := range cpus {
		switch {
		case q < len(queues) && len(queues[q].CPUs) > 0:
			cpus[q] = queues[q].CPUs[0]
		case len(online) > 0:
			cpus[q] = online[q%len(online)]
		default:
			cpus[q] = -1
		}
	}
	return cpus
}

// Disagreements lists the queues whose worker runs on a CPU its interrupt
// is not affined to: the packets are then received on one CPU and
// processed on another, a cross-CPU cache miss per batch.
func Disagreements(cpus []int, queues []QueueCPU) []int {
	var bad []int
	for q, c := range cpus {
		if c < 0 || q >= len(queues) || len(queues[q].CPUs) == 0 {
			continue
		}
		if !slices.Contains(queues[q].CPUs, c) {
			bad = append(bad, q)
		}
	}
	return bad
}
