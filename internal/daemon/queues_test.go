package daemon

import (
	"strings"
	"testing"

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
