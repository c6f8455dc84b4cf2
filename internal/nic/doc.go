// Package nic reads what the gateway needs to know about a network
// interface's receive queues: how many there are (ethtool's channels, the
// SIOCETHTOOL ETHTOOL_GCHANNELS call, which answers for the caller's network
// namespace), which interrupt serves each queue (/proc/interrupts, by the
// names drivers give their queue vectors) and which CPUs that interrupt is
// affined to (/proc/irq/N/effective_affinity_list). Nothing here is on the
// packet path.
package nic
