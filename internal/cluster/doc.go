// Package cluster runs a gateway as one node of a cluster on etcd
// (docs/cluster.md): tunnel groups each have one active node at a time,
// chosen through etcd, which fences itself before anyone else can take
// the group over (Ownership, Group.MaySend); the active writes its Child
// SAs to etcd sealed under the cluster key (Sealer, Replicator), reserves
// outbound sequence numbers there in blocks before using them (SeqMarks)
// and publishes its inbound replay-window tops (ReplayTops), so that a
// standby can take over without an IKE exchange, without ever sending a
// sequence number twice under one key and without accepting a replay
// (RFC 6027 §3.2-3.4). Nothing per packet touches etcd: the workers read
// one atomic per batch.
//
// An etcd member can run inside the process (StartEmbedded), or the
// node connects to an external etcd cluster (Connect).
package cluster
