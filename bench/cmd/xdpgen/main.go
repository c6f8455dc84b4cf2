// Command xdpgen is xdpsec's packet generator and sink over AF_XDP.
//
//	xdpgen tx  -i IFACE --dst ADDR [...]      send UDP flows
//	xdpgen rx  -i IFACE [...]                 count what arrives: rates, loss, reordering
//	xdpgen run --tx-if A --rx-if B [...]      both in one process, one number
//
// Each side runs on its own OS thread, moved into --netns/--tx-netns/
// --rx-netns when given. A progress line goes to stderr every second and
// a summary to stdout at the end (-o json for scripts). See package
// bench/gen for the packet format and the accounting.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/xdpsec/xdpsec/bench/gen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "xdpgen: %v\n", err)
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	sum, err := execute(c, sig, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "xdpgen: %v\n", err)
		return 1
	}
	if c.json {
		err = sum.WriteJSON(stdout)
	} else {
		err = sum.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "xdpgen: %v\n", err)
		return 1
	}
	return 0
}

// side is one running half: its setup reports on opened, then it waits
// for start, runs, and returns its error from done.
type side struct {
	opened chan error
	start  chan struct{}
	done   chan error
	s      *gen.Sender
	r      *gen.Receiver
}

func newSide() *side {
	return &side{opened: make(chan error, 1), start: make(chan struct{}), done: make(chan error, 1)}
}

// launch runs setup, then (after start) work, then teardown, all on one
// thread in netns.
func (sd *side) launch(netns string, cpu int, setup func() error, work func() error, teardown func() error) {
	go func() {
		sd.done <- gen.InNetns(netns, func() error {
			if cpu >= 0 {
				if err := gen.PinThread(cpu); err != nil {
					sd.opened <- err
					return err
				}
			}
			if err := setup(); err != nil {
				sd.opened <- err
				return err
			}
			sd.opened <- nil
			<-sd.start
			err := work()
			return errors.Join(err, teardown())
		})
	}()
}

func execute(c config, sig <-chan os.Signal, stderr io.Writer) (gen.Summary, error) {
	var tx, rx *side
	// In run mode the receiving interface gives the sender's defaults:
	// its address for --dst, its MAC when the neighbour table has none.
	var rxHop gen.Hop
	if c.cmd == "run" {
		err := gen.InNetns(c.rxNetns, func() (err error) {
			rxHop, err = gen.ResolveHop(c.rxIf, netip.Addr{}, c.tx.dst, false, 0)
			return err
		})
		if err != nil && (!c.tx.dst.IsValid() || rxHop.SrcMAC == nil) {
			return gen.Summary{}, fmt.Errorf("rx %s: %w", c.rxIf, err)
		}
	}
	// The sender resolves its next hop before the sink attaches its
	// program.
	if c.cmd != "rx" {
		tx = newSide()
		t := c.tx
		if !t.dst.IsValid() {
			t.dst = rxHop.Src
		}
		tx.launch(c.txNetns, c.txCPU, func() error {
			timeout := time.Duration(t.resolveTimeoutMs) * time.Millisecond
			hop, err := gen.ResolveHop(c.txIf, t.src, t.dst, t.dstMAC == nil, timeout)
			if err != nil && c.cmd == "run" && t.dstMAC == nil && hop.Src.IsValid() {
				// Run mode on a direct link: the receiver's MAC will do.
				hop.DstMAC, err = rxHop.SrcMAC, nil
			}
			if err != nil {
				return err
			}
			if t.srcMAC == nil {
				t.srcMAC = hop.SrcMAC
			}
			if t.dstMAC == nil {
				t.dstMAC = hop.DstMAC
			}
			g, err := gen.NewGenerator(gen.Config{SrcMAC: t.srcMAC, DstMAC: t.dstMAC, Src: hop.Src, Dst: t.dst,
				SrcPort: t.sport, DstPort: t.dport, Flows: t.flows, Vary: t.vary, Sizes: t.sizes})
			if err != nil {
				return err
			}
			tx.s, err = gen.OpenSender(g, gen.TxOptions{Ifindex: hop.Ifindex, Queue: c.txQueue, Batch: t.batch,
				Rate: t.rate, Count: t.count, Duration: t.duration})
			return err
		}, func() error { return tx.s.Run() }, func() error { return tx.s.Close() })
		if err := <-tx.opened; err != nil {
			return gen.Summary{}, fmt.Errorf("tx %s: %w", c.txIf, err)
		}
	}
	if c.cmd != "tx" {
		rx = newSide()
		rx.launch(c.rxNetns, c.rxCPU, func() error {
			l, err := netlink.LinkByName(c.rxIf)
			if err != nil {
				return fmt.Errorf("interface %s: %w", c.rxIf, err)
			}
			o := gen.RxOptions{Ifindex: l.Attrs().Index, Queue: c.rxQueue, Batch: c.tx.batch,
				Flows: c.rxFlows, DstPort: c.tx.dport, Verify: c.verify}
			if c.cmd == "rx" {
				o.Duration, o.Count, o.Idle = c.tx.duration, c.tx.count, c.idle
			}
			rx.r, err = gen.OpenReceiver(o)
			return err
		}, func() error { return rx.r.Run() }, func() error { return rx.r.Close() })
		if err := <-rx.opened; err != nil {
			if tx != nil {
				tx.s.Stop()
				close(tx.start)
				<-tx.done
			}
			return gen.Summary{}, fmt.Errorf("rx %s: %w", c.rxIf, err)
		}
	}

	var s *gen.Sender
	var r *gen.Receiver
	if tx != nil {
		s = tx.s
	}
	if rx != nil {
		r = rx.r
	}
	stopProgress := make(chan struct{})
	var wg sync.WaitGroup
	if c.progress {
		wg.Go(func() { gen.Progress(stderr, time.Second, s, r, stopProgress) })
	}
	if rx != nil {
		close(rx.start)
	}
	if tx != nil {
		close(tx.start)
	}
	var errs []error
	txDone, rxDone := chanOf(tx), chanOf(rx)
	for txDone != nil || rxDone != nil {
		select {
		case <-sig:
			if s != nil {
				s.Stop()
			}
			if r != nil {
				r.Stop()
			}
		case err := <-txDone:
			errs = append(errs, err)
			txDone = nil
			if r != nil {
				// Give stragglers --idle, then stop the receiver.
				time.AfterFunc(c.idle, r.Stop)
			}
		case err := <-rxDone:
			errs = append(errs, err)
			rxDone = nil
		}
	}
	close(stopProgress)
	wg.Wait()
	return gen.NewSummary(s, r), errors.Join(errs...)
}

func chanOf(sd *side) chan error {
	if sd == nil {
		return nil
	}
	return sd.done
}
