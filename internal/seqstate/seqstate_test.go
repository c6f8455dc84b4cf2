package seqstate

import (
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

func newSA(t testing.TB, name string, esn bool) *sad.SA {
	t.Helper()
	sa, err := sad.New(sad.Config{Name: name, SPI: 0x1001, Dir: sad.Outbound, Mode: sad.Tunnel,
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Suite: sad.AESGCM128, Key: make([]byte, 20), ESN: esn})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestFingerprint(t *testing.T) {
	key := []byte("0123456789abcdefSALT")
	fp := Fingerprint(key, nil)
	if len(fp) != 32 || fp != Fingerprint(key, nil) {
		t.Fatalf("fingerprint %q not a stable 128-bit hex", fp)
	}
	if strings.Contains(fp, hex.EncodeToString(key[:4])) {
		t.Fatal("fingerprint shows the key")
	}
	other := map[string]string{
		"key":   Fingerprint([]byte("0123456789abcdefSALU"), nil),
		"integ": Fingerprint(key, []byte{1}),
		// The length prefix keeps key ‖ integ key apart.
		"split": Fingerprint(key[:19], key[19:]),
	}
	for what, f := range other {
		if f == fp {
			t.Errorf("another %s, the same fingerprint", what)
		}
	}
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st := openStore(t, dir)
	if _, found, err := st.Load("aa"); found || err != nil {
		t.Fatalf("empty store: found %v, %v", found, err)
	}
	if ok, err := st.Declare("aa"); !ok || err != nil {
		t.Fatalf("declare: %v %v", ok, err)
	}
	if m, found, err := st.Load("aa"); m != 0 || !found || err != nil {
		t.Fatalf("declared key: %d %v %v", m, found, err)
	}
	if err := st.Save("aa", 1<<40); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Declare("aa"); ok {
		t.Fatal("declare reset a key with a mark")
	}
	if m, _, _ := st.Load("aa"); m != 1<<40 {
		t.Fatalf("mark %d after declaring a known key again", m)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, %v", fi.Mode(), err)
	}
	// A damaged file is an error, not a fresh key.
	os.WriteFile(filepath.Join(dir, "bb.seq"), []byte("xdpsec-seq-v1 bb 12x\n"), 0o600)
	if _, _, err := st.Load("bb"); err == nil {
		t.Fatal("damaged mark read as good")
	}
	os.WriteFile(filepath.Join(dir, "cc.seq"), []byte("xdpsec-seq-v1 aa 12\n"), 0o600)
	if _, _, err := st.Load("cc"); err == nil {
		t.Fatal("another key's mark accepted")
	}
}

// TestOpenUnwritable: a directory that cannot be made or written is an
// error at Open, not a warning later.
func TestOpenUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, dir := range []string{filepath.Join(file, "state"), "relative/state", ""} {
		if _, err := Open(dir); !errors.Is(err, ErrUnwritable) {
			t.Errorf("Open(%q): %v, want ErrUnwritable", dir, err)
		}
	}
	if os.Geteuid() != 0 { // root writes through modes
		ro := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(ro, 0o500)
		if _, err := Open(ro); !errors.Is(err, ErrUnwritable) {
			t.Errorf("read-only directory: %v", err)
		}
	}
}

func TestResumeUnknownKey(t *testing.T) {
	st := openStore(t, t.TempDir())
	sa := newSA(t, "a-to-b", false)
	_, err := Resume(st, []Key{{sa, "f00d"}}, time.Now())
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "a-to-b") || !strings.Contains(err.Error(), "f00d") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, got := sa.ReserveSeq(1); got != 0 {
		t.Fatal("a refused SA can still send")
	}
}

func TestLockInUse(t *testing.T) {
	dir := t.TempDir()
	st1, st2 := openStore(t, dir), openStore(t, dir)
	st1.Declare("f00d")
	if _, err := Resume(st1, []Key{{newSA(t, "a", false), "f00d"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(st2, []Key{{newSA(t, "b", false), "f00d"}}, time.Now()); !errors.Is(err, ErrInUse) {
		t.Fatalf("second user of a key: %v", err)
	}
	st1.Close()
	if _, err := Resume(st2, []Key{{newSA(t, "b", false), "f00d"}}, time.Now()); err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
}

// TestResumeRenamed: the mark follows the key, not the SA's name or SPI.
func TestResumeRenamed(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	st.Save("f00d", 5000)
	sa := newSA(t, "renamed", false)
	if _, err := Resume(st, []Key{{sa, "f00d"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if first, got := sa.ReserveSeq(1); got != 1 || first != 5001 {
		t.Fatalf("resumed at %d (%d), want 5001", first, got)
	}
	if m, _, _ := st.Load("f00d"); m <= 5001 {
		t.Fatalf("mark %d not ahead of the first number used", m)
	}
}

// TestBlockSizing: blocks follow the rate, between the bounds.
func TestBlockSizing(t *testing.T) {
	st := openStore(t, t.TempDir())
	st.Declare("f00d")
	sa := newSA(t, "a", true)
	now := time.Unix(1000, 0)
	r, err := Resume(st, []Key{{sa, "f00d"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if sa.SeqLimit() != MinBlock {
		t.Fatalf("first block %d", sa.SeqLimit())
	}
	// 10 Mpps: in 10 ms steps, the worker takes what it may.
	writes := 0
	r.save = func(fp string, mark uint64) error { writes++; return st.Save(fp, mark) }
	for i := 0; i < 300; i++ {
		now = now.Add(RefreshInterval)
		want := uint64(100_000)
		for want > 0 {
			_, got := sa.ReserveSeq(int(want))
			if got == 0 {
				break
			}
			want -= uint64(got)
		}
		if err := r.Refresh(now); err != nil {
			t.Fatal(err)
		}
	}
	if b := r.entries[0].block; b != MaxBlock {
		t.Errorf("block %d at 10 Mpps, want %d", b, MaxBlock)
	}
	if writes > 10 {
		t.Errorf("%d writes for 3 s at 10 Mpps", writes)
	}
	// Idle: the block shrinks back.
	for i := 0; i < 300; i++ {
		now = now.Add(RefreshInterval)
		r.Refresh(now)
	}
	if b := r.entries[0].block; b != MinBlock {
		t.Errorf("block %d when idle, want %d", b, MinBlock)
	}
	if blockFor(3e5) != 1<<19 || blockFor(1) != MinBlock || blockFor(1e12) != MaxBlock {
		t.Error("blockFor")
	}
}

// TestRefreshSaveFails: when the mark cannot be saved the limit stays,
// and the SA stops at it instead of going past a mark not on disk.
func TestRefreshSaveFails(t *testing.T) {
	st := openStore(t, t.TempDir())
	st.Declare("f00d")
	sa := newSA(t, "a", false)
	now := time.Now()
	r, err := Resume(st, []Key{{sa, "f00d"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	r.save = func(string, uint64) error { return errors.New("disk full") }
	used := 0
	for {
		_, got := sa.ReserveSeq(4096)
		if got == 0 {
			break
		}
		used += got
		now = now.Add(RefreshInterval)
		if err := r.Refresh(now); err == nil && uint64(used) > MinBlock/2 {
			t.Fatal("failed save not reported")
		}
	}
	if used != MinBlock || sa.SeqDrop() != sad.ErrSeqUnreserved {
		t.Fatalf("used %d with the first block %d durable (%v)", used, MinBlock, sa.SeqDrop())
	}
	if m, _, _ := st.Load("f00d"); m < uint64(used) {
		t.Fatalf("used %d above the durable mark %d", used, m)
	}
}

// TestCrashSimulation: workers take numbers as fast as they can while
// the reserver runs (with slow and failing saves); at a random moment
// the process "dies" (nothing more is saved). The mark on disk is at
// least every number used, and the next run starts above all of them,
// run after run.
func TestCrashSimulation(t *testing.T) {
	dir := t.TempDir()
	{
		st := openStore(t, dir)
		st.Declare("f00d")
		st.Close()
	}
	var prevMax uint64
	for run := 0; run < 20; run++ {
		st, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		sa := newSA(t, "a", run%2 == 0)
		r, err := Resume(st, []Key{{sa, "f00d"}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var fail atomic.Bool
		r.save = func(fp string, mark uint64) error {
			if rand.IntN(4) == 0 {
				fail.Store(true)
				return errors.New("injected")
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			return st.Save(fp, mark)
		}
		var dead atomic.Bool
		var maxUsed [3]atomic.Uint64
		var firstUsed atomic.Uint64
		firstUsed.Store(^uint64(0))
		var wg sync.WaitGroup
		for w := range maxUsed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !dead.Load() {
					first, got := sa.ReserveSeq(64)
					if got == 0 {
						continue
					}
					for {
						f := firstUsed.Load()
						if first >= f || firstUsed.CompareAndSwap(f, first) {
							break
						}
					}
					maxUsed[w].Store(first + uint64(got) - 1)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !dead.Load() {
				r.Refresh(time.Now())
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			}
		}()
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		dead.Store(true) // kill -9: no final save, whatever was in flight
		wg.Wait()
		st.Close()
		var used uint64
		for i := range maxUsed {
			used = max(used, maxUsed[i].Load())
		}
		check, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		mark, _, err := check.Load("f00d")
		check.Close()
		if err != nil {
			t.Fatal(err)
		}
		if mark < used {
			t.Fatalf("run %d: used up to %d, but the durable mark is %d", run, used, mark)
		}
		if f := firstUsed.Load(); used > 0 && f <= prevMax {
			t.Fatalf("run %d: first number %d not above the last run's %d", run, f, prevMax)
		}
		if used > 0 {
			prevMax = used
		}
		t.Logf("run %d: used up to %d, mark %d, a save failed: %v", run, used, mark, fail.Load())
	}
	if prevMax == 0 {
		t.Fatal("no run used any number")
	}
}

// TestAddRemove: a live reload adds keys to a running Reserver as Resume
// takes them (an unknown one is refused and not kept, and cannot send)
// and removes the SAs it deleted: Refresh leaves those alone.
func TestAddRemove(t *testing.T) {
	st := openStore(t, t.TempDir())
	a, b, c := newSA(t, "a", false), newSA(t, "b", false), newSA(t, "c", false)
	for _, fp := range []string{"aa", "bb"} {
		if _, err := st.Declare(fp); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	r, err := Resume(st, []Key{{a, "aa"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add([]Key{{c, "cc"}}, now); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("an undeclared key: %v", err)
	}
	if _, got := c.ReserveSeq(1); got != 0 {
		t.Error("a refused SA can send")
	}
	if err := r.Add([]Key{{b, "bb"}}, now); err != nil {
		t.Fatal(err)
	}
	if b.SeqLimit() < MinBlock {
		t.Errorf("an added SA's limit %d, want a block reserved", b.SeqLimit())
	}
	r.Remove([]Key{{SA: b}})
	limit := b.SeqLimit()
	b.SetSeq(limit) // used up: a Refresh would reserve more, were b kept
	if err := r.Refresh(now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if b.SeqLimit() != limit || len(r.entries) != 1 || r.entries[0].SA != a {
		t.Errorf("a removed SA is still refreshed: limit %d -> %d, %d entries", limit, b.SeqLimit(), len(r.entries))
	}
}
