package xdpconf

import "testing"

func TestParseAttachMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want AttachMode
		ok   bool
	}{
		{"", ModeAuto, true}, {"auto", ModeAuto, true}, {" Native ", ModeNative, true},
		{"driver", ModeNative, true}, {"drv", ModeNative, true}, {"generic", ModeGeneric, true},
		{"SKB", ModeGeneric, true}, {"offload", ModeAuto, false},
	} {
		got, err := ParseAttachMode(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("ParseAttachMode(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && c.in != "" {
			// String gives a spelling ParseAttachMode reads back.
			if back, err := ParseAttachMode(got.String()); err != nil || back != got {
				t.Errorf("round trip of %v: %v, %v", got, back, err)
			}
		}
	}
	if s := AttachMode(7).String(); s != "mode(7)" {
		t.Errorf("AttachMode(7) = %q", s)
	}
}
