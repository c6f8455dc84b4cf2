package ikeload

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"
)

// Report is the outcome of one Run.
type Report struct {
	Target                   string
	N, C                     int
	IKEProposal, ESPProposal string
	Succeeded, Failed        int
	// Duration is the wall time from the first request to the last setup's
	// end; SetupsPerSecond is Succeeded over it.
	Duration        time.Duration
	SetupsPerSecond float64
	Latency         Latency
	Retransmissions int
	Cookies         int // COOKIE rounds the responder asked for (RFC 7296 §2.6)
	NATT            int // setups whose IKE_AUTH went to the NAT-T port
	MaxInFlight     int
	// Failures counts failed setups by cause; Examples holds one error
	// text per cause.
	Failures map[string]int
	Examples map[string]string
	// GeneratorCPU is the CPU time this process used during the run: near
	// Duration × cores available to it means the generator was the limit.
	GeneratorCPU time.Duration
}

// Latency holds percentiles of the setup latency.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func (r *Report) finish(lats []time.Duration) {
	r.Succeeded = len(lats)
	for _, v := range r.Failures {
		r.Failed += v
	}
	if r.Duration > 0 {
		r.SetupsPerSecond = float64(r.Succeeded) / r.Duration.Seconds()
	}
	slices.Sort(lats)
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	if len(lats) > 0 {
		r.Latency = Latency{
			P50: percentile(lats, 50), P90: percentile(lats, 90), P99: percentile(lats, 99),
			Max: lats[len(lats)-1], Mean: sum / time.Duration(len(lats)),
		}
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// jsonReport is the -o json form: durations in milliseconds or seconds,
// named so.
type jsonReport struct {
	Target          string            `json:"target"`
	N               int               `json:"n"`
	C               int               `json:"c"`
	IKEProposal     string            `json:"ike_proposal"`
	ESPProposal     string            `json:"esp_proposal"`
	Succeeded       int               `json:"succeeded"`
	Failed          int               `json:"failed"`
	DurationS       float64           `json:"duration_s"`
	SetupsPerSecond float64           `json:"setups_per_second"`
	LatencyMS       map[string]any    `json:"latency_ms"`
	Retransmissions int               `json:"retransmissions"`
	Cookies         int               `json:"cookies"`
	NATT            int               `json:"natt"`
	MaxInFlight     int               `json:"max_in_flight"`
	Failures        map[string]int    `json:"failures"`
	Examples        map[string]string `json:"failure_examples,omitempty"`
	GeneratorCPUS   float64           `json:"generator_cpu_s"`
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	j := jsonReport{
		Target: r.Target, N: r.N, C: r.C, IKEProposal: r.IKEProposal, ESPProposal: r.ESPProposal,
		Succeeded: r.Succeeded, Failed: r.Failed, DurationS: r.Duration.Seconds(),
		SetupsPerSecond: math.Round(r.SetupsPerSecond*10) / 10,
		LatencyMS: map[string]any{
			"p50": ms(r.Latency.P50), "p90": ms(r.Latency.P90), "p99": ms(r.Latency.P99),
			"max": ms(r.Latency.Max), "mean": ms(r.Latency.Mean),
		},
		Retransmissions: r.Retransmissions, Cookies: r.Cookies, NATT: r.NATT, MaxInFlight: r.MaxInFlight,
		Failures: r.Failures, Examples: r.Examples, GeneratorCPUS: r.GeneratorCPU.Seconds(),
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	cpuShare := 0.0
	if r.Duration > 0 {
		cpuShare = r.GeneratorCPU.Seconds() / r.Duration.Seconds()
	}
	_, err := fmt.Fprintf(w, `target          %s  (IKE %s, ESP %s)
setups          %d ok, %d failed of %d, at most %d in flight (asked %d)
duration        %.3f s
setups/s        %.1f
latency         p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms
retransmissions %d
cookies         %d
natt            %d
generator CPU   %.3f s (%.2f cores)
`, r.Target, r.IKEProposal, r.ESPProposal, r.Succeeded, r.Failed, r.N, r.MaxInFlight, r.C,
		r.Duration.Seconds(), r.SetupsPerSecond,
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max), ms(r.Latency.Mean),
		r.Retransmissions, r.Cookies, r.NATT, r.GeneratorCPU.Seconds(), cpuShare)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(r.Failures)) {
		if _, err := fmt.Fprintf(w, "failure         %-28s %d  (%s)\n", k, r.Failures[k], r.Examples[k]); err != nil {
			return err
		}
	}
	return nil
}
