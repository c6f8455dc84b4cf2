package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpsec/xdpsec/internal/control"
)

// collector exports a fresh Snapshot on every scrape, so the metrics and
// `xdpsec show` always agree.
type collector struct {
	snap func() *control.Snapshot

	saPackets, saBytes, saDrops, saSeq, saReplayTop, saUsable *prometheus.Desc
	worker, workerDrops, xdp, xskC, hops, acquires            *prometheus.Desc
	ikeFlood, ikeHalfOpen, ikeFrag                            *prometheus.Desc
	ikeNATT                                                   *prometheus.Desc
	cluster                                                   *clusterDescs // cluster_metrics.go
}

func newCollector(snap func() *control.Snapshot) *collector {
	saL := []string{"sa", "spi", "dir"}
	return &collector{
		snap:        snap,
		cluster:     newClusterDescs(),
		saPackets:   prometheus.NewDesc("xdpsec_sa_packets_total", "Packets encapsulated (out) or decapsulated and delivered (in) by the SA.", saL, nil),
		saBytes:     prometheus.NewDesc("xdpsec_sa_bytes_total", "Inner bytes carried by the SA.", saL, nil),
		saDrops:     prometheus.NewDesc("xdpsec_sa_drops_total", "Packets the SA dropped, by reason.", append(saL, "reason"), nil),
		saSeq:       prometheus.NewDesc("xdpsec_sa_seq", "Last outbound sequence number sent.", saL, nil),
		saReplayTop: prometheus.NewDesc("xdpsec_sa_replay_top", "Highest inbound sequence number accepted.", saL, nil),
		saUsable:    prometheus.NewDesc("xdpsec_sa_usable", "1 while the SA may carry traffic.", saL, nil),
		worker:      prometheus.NewDesc("xdpsec_worker_total", "Worker counters.", []string{"worker", "counter"}, nil),
		workerDrops: prometheus.NewDesc("xdpsec_worker_drops_total", "Packets a worker dropped, by reason.", []string{"worker", "reason"}, nil),
		xdp:         prometheus.NewDesc("xdpsec_xdp_packets_total", "XDP steering verdicts.", []string{"program", "verdict"}, nil),
		xskC:        prometheus.NewDesc("xdpsec_xsk", "AF_XDP socket counters and frame accounting.", []string{"interface", "queue", "counter"}, nil),
		hops:        prometheus.NewDesc("xdpsec_nexthop_total", "Next-hop table counters.", []string{"interface", "counter"}, nil),
		ikeFlood: prometheus.NewDesc("xdpsec_ike_flood_total",
			"IKE_SA_INIT handling under load: requests, cookies sent/valid/invalid, rate-limited and half-open-cap drops, expiries.", []string{"counter"}, nil),
		ikeHalfOpen: prometheus.NewDesc("xdpsec_ike_half_open", "Half-open responder IKE SAs: now (half_open) and the peak (half_open_peak).", []string{"gauge"}, nil),
		acquires:    prometheus.NewDesc("xdpsec_acquires_total", "Trap policies' acquires: raised by the workers, lost, and what IKE made of them.", []string{"counter"}, nil),
		ikeFrag:     prometheus.NewDesc("xdpsec_ike_fragments_total", "IKE fragmentation (RFC 7383): fragments sent and reassembled, and drops by cause.", []string{"counter"}, nil),
		ikeNATT:     prometheus.NewDesc("xdpsec_ike_natt_keepalives_total", "NAT-T keepalives (RFC 3948 section 2.3) sent by IKE SAs behind a NAT.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.saPackets, c.saBytes, c.saDrops, c.saSeq, c.saReplayTop, c.saUsable,
		c.worker, c.workerDrops, c.xdp, c.xskC, c.hops, c.acquires, c.ikeFlood, c.ikeHalfOpen, c.ikeFrag, c.ikeNATT} {
		ch <- d
	}
	c.cluster.describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), l...)
	}
	for _, sa := range s.SAs {
		l := []string{sa.Name, fmt.Sprintf("0x%08x", sa.SPI), sa.Dir}
		counter(c.saPackets, sa.Packets, l...)
		counter(c.saBytes, sa.Bytes, l...)
		for r, n := range sa.Drops {
			counter(c.saDrops, n, append(l, r)...)
		}
		if sa.Dir == "out" {
			gauge(c.saSeq, sa.Seq, l...)
		} else {
			gauge(c.saReplayTop, sa.ReplayTop, l...)
		}
		var u uint64
		if sa.Usable {
			u = 1
		}
		gauge(c.saUsable, u, l...)
	}
	for _, w := range s.Workers {
		id := strconv.Itoa(w.ID)
		for k, v := range w.Counters {
			counter(c.worker, v, id, k)
		}
		for r, n := range w.Drops {
			counter(c.workerDrops, n, id, r)
		}
	}
	for prog, m := range s.XDP {
		for k, v := range m {
			counter(c.xdp, v, prog, k)
		}
	}
	for _, x := range s.XSK {
		q := strconv.Itoa(x.Queue)
		for k, v := range x.Counters {
			gauge(c.xskC, v, x.Interface, q, k)
		}
	}
	for k, v := range s.IKEStats {
		if k == nattKeepalives {
			counter(c.ikeNATT, v)
			continue
		}
		if ikeGauges[k] {
			gauge(c.ikeHalfOpen, v, k)
		} else {
			counter(c.ikeFlood, v, k)
		}
	}
	for ifc, m := range s.NextHops {
		for k, v := range m {
			counter(c.hops, v, ifc, k)
		}
	}
	for k, v := range s.Acquires {
		counter(c.acquires, v, k)
	}
	for k, v := range s.IKEFragments {
		counter(c.ikeFrag, v, k)
	}
	c.cluster.collect(ch, s.Cluster)
}

func (d *Daemon) serveMetrics() error {
	ln, err := net.Listen("tcp", d.cfg.Metrics)
	if err != nil {
		return hinted(fmt.Errorf("metrics: %w", err), listenHint("metrics", err))
	}
	return d.startMetrics(ln)
}

// startMetrics serves /metrics on ln (at start, and on a reload that
// moves the endpoint).
func (d *Daemon) startMetrics(ln net.Listener) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(d.Snapshot)); err != nil {
		ln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	d.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := d.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server", "err", err)
		}
	}()
	d.log.Info("metrics", "listen", ln.Addr().String())
	return nil
}
