package daemon

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/xsk"
	"github.com/xdpsec/xdpsec/internal/config"
)

// TestQueueCount: queues: auto serves what the NIC has; an explicit count
// that differs refuses naming both numbers, or asks for a resize with
// set_channels.
func TestQueueCount(t *testing.T) {
	wan4 := ifQueues{"wan0", 4}
	lan4, lan2 := ifQueues{"lan0", 4}, ifQueues{"lan0", 2}
	for _, tc := range []struct {
		name   string
		want   int
		set    bool
		ifs    []ifQueues
		n      int
		resize bool
		err    []string // substrings of the error
	}{
		{"auto one-arm", config.QueuesAuto, false, []ifQueues{wan4}, 4, false, nil},
		{"auto two-arm", config.QueuesAuto, false, []ifQueues{wan4, lan4}, 4, false, nil},
		{"auto differing", config.QueuesAuto, false, []ifQueues{wan4, lan2}, 0, false, []string{"wan0 has 4", "lan0 has 2"}},
		{"explicit matches", 4, false, []ifQueues{wan4, lan4}, 4, false, nil},
		{"explicit fewer", 1, false, []ifQueues{wan4, lan4}, 0, false, []string{"queues: 1", "wan0 has 4 RX queues"}},
		{"explicit more", 8, false, []ifQueues{wan4}, 0, false, []string{"queues: 8", "wan0 has 4"}},
		{"explicit fewer, set_channels", 1, true, []ifQueues{wan4, lan4}, 1, true, nil},
		{"explicit matching, set_channels", 4, true, []ifQueues{wan4}, 4, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, resize, err := queueCount(tc.want, tc.set, tc.ifs)
			if len(tc.err) > 0 {
				if err == nil {
					t.Fatalf("got %d queues, want an error", n)
				}
				for _, s := range tc.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil || n != tc.n || resize != tc.resize {
				t.Errorf("got %d, %v, %v; want %d, %v", n, resize, err, tc.n, tc.resize)
			}
		})
	}
}

// TestBindXSK: zerocopy: auto binds zero-copy where the driver can and
// otherwise falls back to copy mode, handing back the kernel's refusal for
// the log line; on refuses to start without zero-copy; off never asks for
// it; a copy-mode failure after a zero-copy refusal names both.
func TestBindXSK(t *testing.T) {
	zcRefused := errors.New("bind (mode zero-copy, flags 0xc): operation not supported")
	copyFailed := errors.New("bind (mode copy, flags 0xa): device or resource busy")
	zc, cp := &xsk.Socket{}, &xsk.Socket{}
	for _, tt := range []struct {
		name     string
		zc       config.ZeroCopyMode
		zcErr    error // what a zero-copy bind returns
		copyErr  error // what a copy-mode bind returns
		want     *xsk.Socket
		tries    []xsk.Mode
		fellBack bool
		errHas   []string
	}{
		{"auto, driver can", config.ZeroCopyAuto, nil, nil, zc, []xsk.Mode{xsk.ModeZeroCopy}, false, nil},
		{"auto, driver cannot", config.ZeroCopyAuto, zcRefused, nil, cp, []xsk.Mode{xsk.ModeZeroCopy, xsk.ModeCopy}, true, nil},
		{"auto, both fail", config.ZeroCopyAuto, zcRefused, copyFailed, nil, []xsk.Mode{xsk.ModeZeroCopy, xsk.ModeCopy}, true,
			[]string{"zero-copy: " + zcRefused.Error(), "copy mode: " + copyFailed.Error()}},
		{"on, driver can", config.ZeroCopyOn, nil, nil, zc, []xsk.Mode{xsk.ModeZeroCopy}, false, nil},
		{"on, driver cannot", config.ZeroCopyOn, zcRefused, nil, nil, []xsk.Mode{xsk.ModeZeroCopy}, true,
			[]string{"interfaces.zerocopy: on", zcRefused.Error()}},
		{"off", config.ZeroCopyOff, zcRefused, nil, cp, []xsk.Mode{xsk.ModeCopy}, false, nil},
		{"off, copy fails", config.ZeroCopyOff, nil, copyFailed, nil, []xsk.Mode{xsk.ModeCopy}, false, []string{copyFailed.Error()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tries []xsk.Mode
			s, zcErr, err := bindXSK(func(m xsk.Mode) (*xsk.Socket, error) {
				tries = append(tries, m)
				if m == xsk.ModeZeroCopy {
					if tt.zcErr != nil {
						return nil, tt.zcErr
					}
					return zc, nil
				}
				if tt.copyErr != nil {
					return nil, tt.copyErr
				}
				return cp, nil
			}, tt.zc)
			if !slices.Equal(tries, tt.tries) {
				t.Errorf("binds tried %v, want %v", tries, tt.tries)
			}
			if (zcErr != nil) != tt.fellBack {
				t.Errorf("zero-copy refusal %v, want one: %v", zcErr, tt.fellBack)
			}
			if len(tt.errHas) == 0 {
				if err != nil || s != tt.want {
					t.Fatalf("got %p, %v; want %p", s, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, h := range tt.errHas {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q lacks %q", err, h)
				}
			}
		})
	}
}

// TestIdleSpin: without idle_spin every empty poll sleeps; with it, empty
// polls spin (no syscall) until the spin has lasted that long, then the
// worker sleeps, and it spins again only once a poll found work.
func TestIdleSpin(t *testing.T) {
	base := time.Unix(1000, 0)
	clock := base
	now := func() time.Time { return clock }
	at := func(us int) { clock = base.Add(time.Duration(us) * time.Microsecond) }

	off := idleSpin{}
	if off.sleep(true, now) || !off.sleep(false, now) || !off.sleep(false, now) {
		t.Fatal("idle_spin 0: a poll with work must not sleep and every empty one must")
	}

	s := idleSpin{spin: 50 * time.Microsecond}
	for _, st := range []struct {
		us    int
		work  bool
		sleep bool
	}{
		{0, false, false}, // first empty poll: the spin starts
		{10, true, false},
		{20, false, false}, // spin restarts at 20
		{60, false, false},
		{69, false, false},
		{70, false, true},  // 50 µs of empty polls: sleep
		{71, false, true},  // woken with nothing (timeout): sleep again
		{500, false, true}, // still idle: no new spin
		{600, true, false}, // work again
		{601, false, false},
		{651, false, true},
	} {
		at(st.us)
		if got := s.sleep(st.work, now); got != st.sleep {
			t.Fatalf("at %d µs, work %v: sleep %v, want %v", st.us, st.work, got, st.sleep)
		}
	}
	// It runs once per poll: no allocation, with the real clock.
	k := 0
	if a := testing.AllocsPerRun(100, func() { k++; s.sleep(k%3 == 0, time.Now) }); a != 0 {
		t.Errorf("idleSpin.sleep allocates %v", a)
	}
}

// TestWorkerBatch: the workers take batch: when given, else
// config.DefaultBatch, which must fit the worker's arrays.
func TestWorkerBatch(t *testing.T) {
	if config.DefaultBatch > fastpath.MaxBatch || config.MaxBatch != fastpath.MaxBatch {
		t.Fatalf("config's batch bounds (default %d, max %d) do not fit fastpath.MaxBatch %d", config.DefaultBatch, config.MaxBatch, fastpath.MaxBatch)
	}
	if b := workerBatch(&config.Config{}); b != config.DefaultBatch {
		t.Errorf("no batch: %d, want %d", b, config.DefaultBatch)
	}
	if b := workerBatch(&config.Config{Batch: 32}); b != 32 {
		t.Errorf("batch: 32 gave %d", b)
	}
}

// TestXSKCountersSyscalls: show stats and the metrics carry each socket's
// syscalls (tx_kicks, rx_kicks, polls) and its zero-copy and hugepage
// state as 0/1.
func TestXSKCountersSyscalls(t *testing.T) {
	c := XSKCounters(xsk.Stats{TxKicks: 1, RxKicks: 2, Polls: 3, ZeroCopy: true, HugePages: false})
	for k, want := range map[string]uint64{"tx_kicks": 1, "rx_kicks": 2, "polls": 3, "zero_copy": 1, "huge_pages": 0} {
		if v, ok := c[k]; !ok || v != want {
			t.Errorf("%s = %d (present %v), want %d", k, v, ok, want)
		}
	}
}
