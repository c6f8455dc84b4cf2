// Package xdpconf holds what the configuration needs to know about the XDP
// program without loading it: how it may be attached and how many receive
// queues it can steer. It imports nothing, so internal/config can check
// these settings at file:line without depending on the BPF loader (and
// cilium/ebpf) in package bpf, which attaches with them.
package xdpconf

import (
	"fmt"
	"strings"

	"github.com/xdpsec/xdpsec/internal/enum"
)

// MaxQueues is the number of XSKMAP slots in xdpsec.c: receive queues
// 0..MaxQueues-1 can be steered; traffic on higher queues is dropped by
// redirects. bpf's spec test checks the map against it.
const MaxQueues = 64

// AttachMode chooses the XDP hook.
type AttachMode int

const (
	// ModeAuto tries ModeNative and falls back to ModeGeneric.
	ModeAuto AttachMode = iota
	// ModeNative runs in the driver (XDP_FLAGS_DRV_MODE).
	ModeNative
	// ModeGeneric runs after the skb is built (XDP_FLAGS_SKB_MODE); works on
	// every device, slower, and AF_XDP is copy mode only.
	ModeGeneric
)

var attachModeNames = [...]string{ModeAuto: "auto", ModeNative: "native", ModeGeneric: "generic"}

func (m AttachMode) String() string { return enum.Name(m, attachModeNames[:], "mode") }

// ParseAttachMode accepts "auto", "native" (or "driver", "drv") and
// "generic" (or "skb"), the spellings of ip-link(8) and xdp-loader.
func ParseAttachMode(s string) (AttachMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return ModeAuto, nil
	case "native", "driver", "drv":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return ModeAuto, fmt.Errorf("unknown xdp attach mode %q (want auto, native or generic)", s)
}
