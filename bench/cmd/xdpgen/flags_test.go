package main

import (
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/bench/gen"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args  string
		check func(t *testing.T, c config)
	}{
		{"tx -i veth0 -q 1 --dst 198.18.1.1 --flows 16 --size imix --rate 1.5M --duration 3s -o json", func(t *testing.T, c config) {
			if c.cmd != "tx" || c.txIf != "veth0" || c.txQueue != 1 || c.tx.flows != 16 || !c.json ||
				c.tx.rate != 1.5e6 || c.tx.duration != 3*time.Second || !slices.Equal(c.tx.sizes, gen.IMIX) ||
				c.tx.dst != netip.MustParseAddr("198.18.1.1") || c.tx.dport != 9 || c.tx.sport != 10000 {
				t.Fatalf("%+v", c)
			}
		}},
		{"tx -i e --dst 2001:db8::2 --src 2001:db8::1 --src-mac 02:00:00:00:00:01 --dst-mac 02:00:00:00:00:02 --vary addr --count 10000 --size 512 --sport 4000 --dport 5000 --netns gen --rate 0", func(t *testing.T, c config) {
			if c.tx.srcMAC.String() != "02:00:00:00:00:01" || c.tx.dstMAC.String() != "02:00:00:00:00:02" ||
				c.tx.vary != gen.VarySrcAddr || c.tx.count != 10000 || c.tx.sizes[0] != 512 || c.tx.sport != 4000 ||
				c.tx.dport != 5000 || c.txNetns != "gen" || c.tx.rate != 0 || c.json {
				t.Fatalf("%+v", c)
			}
		}},
		{"rx -i veth1 --netns sink --verify --idle 2s --dport 7", func(t *testing.T, c config) {
			if c.cmd != "rx" || c.rxIf != "veth1" || c.rxNetns != "sink" || !c.verify || c.idle != 2*time.Second || c.tx.dport != 7 {
				t.Fatalf("%+v", c)
			}
		}},
		{"rx -i veth1", func(t *testing.T, c config) {
			if c.tx.dport != 0 || c.rxFlows != gen.MaxFlows || !c.progress {
				t.Fatalf("%+v", c)
			}
		}},
		{"run --tx-if a --rx-if b --tx-netns A --rx-netns B --rate 500k --progress=false --tx-cpu 1", func(t *testing.T, c config) {
			if c.cmd != "run" || c.txIf != "a" || c.rxIf != "b" || c.txNetns != "A" || c.rxNetns != "B" || c.txCPU != 1 || c.rxCPU != -1 ||
				c.tx.rate != 500e3 || c.progress || c.idle != time.Second {
				t.Fatalf("%+v", c)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			c, err := parseArgs(strings.Fields(tc.args), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, args := range []string{
		"",
		"blast -i x",
		"tx --dst 198.18.0.1", // no interface
		"tx -i x",             // no destination
		"tx -i x --dst 198.18.0.1 --src 2001:db8::1",
		"tx -i x --dst 198.18.0.300",
		"tx -i x --dst 198.18.0.1 --src-mac 02:00",
		"tx -i x --dst 198.18.0.1 --size 20",
		"tx -i x --dst 198.18.0.1 --size big",
		"tx -i x --dst 198.18.0.1 --rate -5",
		"tx -i x --dst 198.18.0.1 --rate 5x",
		"tx -i x --dst 198.18.0.1 --flows 0",
		"tx -i x --dst 198.18.0.1 --flows 70000",
		"tx -i x --dst 198.18.0.1 --vary dst",
		"tx -i x --dst 198.18.0.1 --sport 0",
		"tx -i x --dst 198.18.0.1 --dport 65536",
		"tx -i x --dst 198.18.0.1 --batch 0",
		"tx -i x --dst 198.18.0.1 --batch 4096",
		"tx -i x --dst 198.18.0.1 -o yaml",
		"tx -i x --dst 198.18.0.1 extra",
		"rx",
		"rx -i x -q -1",
		"run --tx-if a",
		"run --rx-if b",
		"tx -i x --dst 198.18.0.1 --cpu -2",
	} {
		if _, err := parseArgs(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"0": 0, "1000": 1000, "500k": 500e3, "1.5M": 1.5e6, "2Mpps": 2e6, "1G": 1e9, "10pps": 10} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "NaN", "1e13", "fast"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q): no error", in)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	var out strings.Builder
	if rc := run([]string{"tx"}, io.Discard, &out); rc != 2 || !strings.Contains(out.String(), "interface") {
		t.Fatalf("rc %d, %q", rc, out.String())
	}
	if rc := run([]string{"help"}, io.Discard, io.Discard); rc != 0 {
		t.Fatalf("help: rc %d", rc)
	}
}
