package gen

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Summary is the final report of a run: the sender's and the receiver's
// counters (either may be absent) and, when both ran in one process, the
// loss between them.
type Summary struct {
	Tx *TxStats `json:"tx,omitempty"`
	Rx *RxStats `json:"rx,omitempty"`
	// Missing is, with both sides, packets sent less distinct packets
	// received (Tagged+Untagged-Duplicates).
	Missing *int64 `json:"missing,omitempty"`
}

// NewSummary builds the summary of a sender, a receiver, or both (nil for
// a side that did not run).
func NewSummary(s *Sender, r *Receiver) Summary {
	var sum Summary
	if s != nil {
		t := s.Stats()
		sum.Tx = &t
	}
	if r != nil {
		x := r.Stats()
		sum.Rx = &x
	}
	if sum.Tx != nil && sum.Rx != nil {
		m := int64(sum.Tx.Packets) - int64(sum.Rx.Tagged+sum.Rx.Untagged-sum.Rx.Duplicates)
		sum.Missing = &m
	}
	return sum
}

// WriteJSON writes the summary as one JSON object.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return nil
}

// WriteText writes the summary for people.
func (s Summary) WriteText(w io.Writer) error {
	var err error
	p := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	if t := s.Tx; t != nil {
		p("tx: %d packets, %d bytes in %.3f s: %s, %.1f Mbit/s (kicks %d, refused %d, errors %d)\n",
			t.Packets, t.Bytes, t.Seconds, PPS(t.PPS), t.Mbps, t.Kicks, t.Refused, t.Errors)
	}
	if r := s.Rx; r != nil {
		p("rx: %d packets, %d bytes in %.3f s: %s, %.1f Mbit/s\n", r.Packets, r.Bytes, r.Seconds, PPS(r.PPS), r.Mbps)
		p("rx: %d flows; lost %d, reordered %d, late %d, duplicates %d; untagged %d, other %d, bad checksum %d; kernel: ring full %d, dropped %d\n",
			r.Flows, r.Lost, r.Reordered, r.Late, r.Duplicates, r.Untagged, r.Other, r.BadChecksum, r.RingFull, r.KernelDropped)
	}
	if s.Missing != nil {
		p("sent - received: %d\n", *s.Missing)
	}
	return err
}

// PPS formats a packet rate.
type PPS float64

func (r PPS) String() string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.3f Mpps", float64(r)/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f kpps", float64(r)/1e3)
	}
	return fmt.Sprintf("%.0f pps", float64(r))
}

// Progress writes a line a second to w with the rates of the last second
// (a nil side is left out) until done is closed.
func Progress(w io.Writer, every time.Duration, s *Sender, r *Receiver, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	var lastTx, lastRx uint64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			dt := now.Sub(lastT).Seconds()
			lastT = now
			line := fmt.Sprintf("xdpgen %5.1fs", now.Sub(start).Seconds())
			if s != nil {
				n := s.packets.Load()
				line += fmt.Sprintf("  tx %s", PPS(float64(n-lastTx)/dt))
				lastTx = n
			}
			if r != nil {
				st := r.sink.Stats()
				line += fmt.Sprintf("  rx %s  lost %d  reordered %d", PPS(float64(st.Packets-lastRx)/dt), st.Lost, st.Reordered)
				lastRx = st.Packets
				if k, err := r.sock.Stats(); err == nil {
					line += fmt.Sprintf("  drops %d", k.Kernel.RxRingFull+k.Kernel.RxDropped)
				}
			}
			fmt.Fprintln(w, line)
		}
	}
}
