// Package gen is xdpsec's traffic generator and sink over AF_XDP: the
// tool the lab uses in place of the kernel's pktgen (which this kernel
// lacks) and of trafgen (which is slower than the gateway it measures).
//
// The generator writes Ethernet + IPv4 (RFC 791) or IPv6 (RFC 8200) + UDP
// (RFC 768) frames with valid checksums (RFC 1071, and the IPv6 rule of
// RFC 8200 §8.1 that a UDP checksum is never zero). One template per flow
// and frame size is built once; per packet the generator copies the
// template and patches only a sequence number in the payload and the UDP
// checksum, computed incrementally from the template's partial sum, so
// the TX loop allocates nothing and sums eight bytes per packet.
//
// Every payload that has room for it starts with a 16-byte tag:
//
//	0      4       8                16
//	| magic | flow  | sequence       |
//
// (big-endian; magic "xgen"). The sink keys per-flow sequence state on
// the tag's flow and reads gaps as loss, packets below the highest seen
// as reordering, and seen-again ones as duplicates, with a window of
// WindowPackets per flow (the RFC 6479 bitmap shape). Frames too small
// for the tag (IPv6 at 64 bytes) are counted but carry no loss
// accounting.
//
// Frame sizes are Ethernet frame sizes without the FCS: 64, 512, 1400, or
// IMIX (7×64 : 4×570 : 1×1518, interleaved so that every 12 consecutive
// packets hold the exact mix). The send rate is a token bucket granted a
// batch at a time.
//
// Sender and Receiver drive one AF_XDP socket each (package
// fastpath/xsk) in batches with need_wakeup; the sender sizes its UMEM so
// that every frame it can allocate fits the TX ring, so Send never
// refuses a numbered packet. The receiver attaches a small XDP program
// that redirects every frame but ARP of its queue to its socket (ARP goes
// on to the kernel, so neighbour resolution keeps working). InNetns runs
// a side's whole life on a locked OS thread moved into a named network
// namespace, so one process can drive a generator and a sink in
// different namespaces; PinThread binds that thread to a CPU.
//
// On a veth (AF_XDP copy mode) the send cost is the kernel's: about 6% of
// the sender's CPU time is spent in Go.
package gen
