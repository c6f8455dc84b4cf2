package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sample() *Snapshot {
	return &Snapshot{
		Config: "gw.yaml", PID: 42, Started: time.Unix(1700000000, 0).UTC(),
		SAs: []SA{{Name: "ab", SPI: 0x1001, Dir: "out", Packets: 7, Drops: map[string]uint64{"no_route": 1}}},
		XDP: map[string]map[string]uint64{"wan": {"esp_redirect": 3}},
	}
}

func TestQueryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.sock")
	s, err := Listen(path, Access{}, sample, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := Query(path)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if got.PID != want.PID || len(got.SAs) != 1 || got.SAs[0].SPI != 0x1001 || got.SAs[0].Drops["no_route"] != 1 ||
		got.XDP["wan"]["esp_redirect"] != 3 || !got.Started.Equal(want.Started) {
		t.Errorf("got %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := Query(path); err == nil {
		t.Error("Query succeeded with no server")
	}
}

func TestBadRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	s, err := Listen(path, Access{}, sample, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ req, want string }{
		{`{"command":"reboot"}` + "\n", `unknown command "reboot"`},
		{"not json\n", "bad request"},
		{strings.Repeat("x", 10000), ""}, // over the limit: closed without an answer
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tc.req)
		b, _ := io.ReadAll(c)
		c.Close()
		if tc.want == "" {
			var r Response
			if len(b) > 0 && json.Unmarshal(b, &r) == nil && r.Snapshot != nil {
				t.Errorf("oversized request answered with a snapshot")
			}
			continue
		}
		var r Response
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%q: answer %q: %v", tc.req, b, err)
		}
		if !strings.Contains(r.Error, tc.want) || r.Snapshot != nil {
			t.Errorf("%q: answer %+v, want error %q", tc.req, r, tc.want)
		}
	}
}

// A socket left by a dead daemon is replaced; one still served is not.
func TestStaleAndBusySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, Access{}, sample, quiet()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen on a served socket: %v", err)
	}
	// Closing a unix listener removes its file; leave a stale one.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s, err := Listen(path, Access{}, sample, quiet())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s.Close()
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"command":"snapshot"}` + "\n"))
	f.Add([]byte(`{"command":1}`))
	f.Add([]byte(`{"command":"snapshot","extra":[1,2,{"x":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q as %+v", b, req)
		}
	})
}

func TestActions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	s, err := Listen(path, Access{}, sample, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Handle(CommandInitiate, func(ctx context.Context, name string) (string, error) {
		if _, ok := ctx.Deadline(); !ok {
			return "", errors.New("no deadline")
		}
		if name != "site" {
			return "", fmt.Errorf("no connection named %q", name)
		}
		return "connection site established", nil
	})
	for _, tc := range []struct {
		command, name, want, wantErr string
	}{
		{CommandInitiate, "site", "connection site established", ""},
		{CommandInitiate, "other", "", `initiate other: no connection named "other"`},
		{CommandTerminate, "site", "", `terminate site: unknown command "terminate"`},
	} {
		got, err := Do(path, tc.command, tc.name)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
			t.Errorf("%s %s: %q, %v; want %q, %q", tc.command, tc.name, got, err, tc.want, tc.wantErr)
		}
	}
	// Snapshots still work beside actions.
	if snap, err := Query(path); err != nil || snap.PID != 42 {
		t.Errorf("query: %v %+v", err, snap)
	}
}
