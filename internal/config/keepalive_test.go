package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeepaliveConfig: keepalive is a connection's NAT-T keepalive
// interval; absent takes the engine's default, 0 turns keepalives off
// (a negative ike.Connection.Keepalive), and a bad value names its line.
func TestKeepaliveConfig(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       time.Duration
		err        string
	}{
		{name: "absent", want: 0},
		{name: "set", line: "keepalive: 15s", want: 15 * time.Second},
		{name: "off", line: "keepalive: 0", want: -1},
		{name: "negative", line: "keepalive: -5s", err: "gw.yaml:14: connections[0].keepalive: \"-5s\" is not a duration"},
		{name: "junk", line: "keepalive: often", err: "gw.yaml:14: connections[0].keepalive: \"often\" is not a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePSK(t, dir)
			y := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
			if tc.line != "" {
				y = strings.Replace(y, "rekey_time: 4h", "rekey_time: 4h\n    "+tc.line, 1)
			}
			c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.IKE.Connections[0].Keepalive; got != tc.want {
				t.Fatalf("Keepalive = %v, want %v", got, tc.want)
			}
		})
	}
}
