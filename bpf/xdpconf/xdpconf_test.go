package xdpconf

import (
	"strings"
	"testing"
)

// Moved here from bpf/spec_test.go with ParseAttachMode.
func TestParseAttachMode(t *testing.T) {
	for in, want := range map[string]AttachMode{
		"": ModeAuto, "auto": ModeAuto, "native": ModeNative, "driver": ModeNative, "DRV": ModeNative,
		"generic": ModeGeneric, " skb ": ModeGeneric,
	} {
		got, err := ParseAttachMode(in)
		if err != nil || got != want {
			t.Errorf("ParseAttachMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in == strings.TrimSpace(strings.ToLower(in)) && in != "" && in != "driver" && in != "drv" && in != "skb" && got.String() != in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	for _, bad := range []string{"offload", "hw", "nativ"} {
		if _, err := ParseAttachMode(bad); err == nil {
			t.Errorf("ParseAttachMode(%q) accepted", bad)
		}
	}
}

func TestAttachModeString(t *testing.T) {
	if s := AttachMode(9).String(); s != "mode(9)" {
		t.Errorf("AttachMode(9) = %q", s)
	}
}
