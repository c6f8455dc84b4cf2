package daemon

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/control"
)

// clusterDescs are the cluster's metrics (from Snapshot.Cluster, as the
// rest): no key material, only names, SPIs and numbers that travel in
// clear anyway.
type clusterDescs struct {
	active, role, changes, leaseLeft, ownerSeen, replayAge, writes, followed *prometheus.Desc
	members, memberHealthy, memberLeader                                     *prometheus.Desc
	seqHeadroom, seqReserved, seqReservedAge                                 *prometheus.Desc
	records                                                                  *prometheus.Desc
	bgpSession, bgpRoutes                                                    *prometheus.Desc
}

func newClusterDescs() *clusterDescs {
	g := []string{"group"}
	sa := []string{"group", "sa", "spi"}
	return &clusterDescs{
		active:        prometheus.NewDesc("xdpsec_cluster_group_active", "1 while this node is the group's active node and may send for it.", g, nil),
		role:          prometheus.NewDesc("xdpsec_cluster_group_role", "This node's role for the group: 1 for the current one of active, standby, fenced.", []string{"group", "role"}, nil),
		changes:       prometheus.NewDesc("xdpsec_cluster_ownership_changes_total", "Changes of the group's owner this node saw.", g, nil),
		leaseLeft:     prometheus.NewDesc("xdpsec_cluster_lease_left_seconds", "How long this node may still send for the group without a renewal (0: not active).", g, nil),
		ownerSeen:     prometheus.NewDesc("xdpsec_cluster_owner_seen_age_seconds", "Time since this node saw the group's owner key change (each renewal changes it; -1: never).", g, nil),
		replayAge:     prometheus.NewDesc("xdpsec_cluster_replay_publish_age_seconds", "Time since the group's published replay-window tops were last up to date (active only; -1: never).", g, nil),
		writes:        prometheus.NewDesc("xdpsec_cluster_etcd_writes_total", "etcd writes this node made for the group, by kind: renew (owner key), seq (sequence reservation), replay (replay tops), record (SA records).", []string{"group", "kind"}, nil),
		followed:      prometheus.NewDesc("xdpsec_cluster_records_followed_total", "Replicated SA records this node took in as a standby.", g, nil),
		members:       prometheus.NewDesc("xdpsec_cluster_etcd_members", "etcd members by health (healthy: answered a status request within 500 ms).", []string{"state"}, nil),
		memberHealthy: prometheus.NewDesc("xdpsec_cluster_etcd_member_healthy", "1 while the etcd member answers its status requests.", []string{"member"}, nil),
		memberLeader:  prometheus.NewDesc("xdpsec_cluster_etcd_member_leader", "1 for the etcd member that is the raft leader.", []string{"member"}, nil),
		seqHeadroom:   prometheus.NewDesc("xdpsec_cluster_seq_headroom", "Sequence numbers the outbound SA may still use below its reservation (limit - seq).", sa, nil),
		seqReserved:   prometheus.NewDesc("xdpsec_cluster_seq_reserved", "The outbound SA's sequence-number high-water mark in etcd, as this node last read or raised it.", sa, nil),
		seqReservedAge: prometheus.NewDesc("xdpsec_cluster_seq_reservation_age_seconds",
			"Time since this node last raised the outbound SA's mark (-1: never).", sa, nil),
		records:    prometheus.NewDesc("xdpsec_cluster_records_total", "Replicated SA records refused: rejected (did not open) and failed (the SA table refused them).", []string{"counter"}, nil),
		bgpSession: prometheus.NewDesc("xdpsec_cluster_bgp_session_established", "1 while the BGP session with the neighbour is established (address_mode bgp).", []string{"neighbor"}, nil),
		bgpRoutes:  prometheus.NewDesc("xdpsec_cluster_bgp_routes_announced", "Host routes (the active groups' addresses) this node announces over BGP.", nil, nil),
	}
}

func (c *clusterDescs) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.role, c.changes, c.leaseLeft, c.ownerSeen, c.replayAge, c.writes, c.followed,
		c.members, c.memberHealthy, c.memberLeader, c.seqHeadroom, c.seqReserved, c.seqReservedAge, c.records, c.bgpSession, c.bgpRoutes} {
		ch <- d
	}
}

func (c *clusterDescs) collect(ch chan<- prometheus.Metric, cl *control.Cluster) {
	if cl == nil {
		return
	}
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, l...)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	for _, g := range cl.Groups {
		metric(c.active, prometheus.GaugeValue, b(g.Role == cluster.RoleActive), g.Name)
		if g.Role != cluster.RoleNone {
			for _, r := range []string{cluster.RoleActive, cluster.RoleStandby, cluster.RoleFenced} {
				metric(c.role, prometheus.GaugeValue, b(g.Role == r), g.Name, r)
			}
		}
		metric(c.changes, prometheus.CounterValue, float64(g.Changes), g.Name)
		metric(c.leaseLeft, prometheus.GaugeValue, g.LeaseLeft, g.Name)
		metric(c.ownerSeen, prometheus.GaugeValue, g.OwnerSeen, g.Name)
		metric(c.replayAge, prometheus.GaugeValue, g.ReplayPublished, g.Name)
		for k, n := range g.Writes {
			metric(c.writes, prometheus.CounterValue, float64(n), g.Name, k)
		}
		metric(c.followed, prometheus.CounterValue, float64(g.Followed), g.Name)
		for _, q := range g.Seq {
			l := []string{g.Name, q.SA, fmt.Sprintf("0x%08x", q.SPI)}
			metric(c.seqHeadroom, prometheus.GaugeValue, float64(q.Headroom), l...)
			metric(c.seqReserved, prometheus.GaugeValue, float64(q.Reserved), l...)
			metric(c.seqReservedAge, prometheus.GaugeValue, q.ReservedAge, l...)
		}
	}
	var healthy, sick float64
	for _, m := range cl.Members {
		if m.Healthy {
			healthy++
		} else {
			sick++
		}
		metric(c.memberHealthy, prometheus.GaugeValue, b(m.Healthy), m.Name)
		metric(c.memberLeader, prometheus.GaugeValue, b(m.Leader), m.Name)
	}
	metric(c.members, prometheus.GaugeValue, healthy, "healthy")
	metric(c.members, prometheus.GaugeValue, sick, "unhealthy")
	metric(c.records, prometheus.CounterValue, float64(cl.RecordsRejected), "rejected")
	metric(c.records, prometheus.CounterValue, float64(cl.RecordsFailed), "failed")
	for _, s := range cl.BGP {
		metric(c.bgpSession, prometheus.GaugeValue, b(s.State == "established"), s.Neighbor)
	}
	if cl.BGP != nil {
		metric(c.bgpRoutes, prometheus.GaugeValue, float64(len(cl.BGPRoutes)))
	}
}
