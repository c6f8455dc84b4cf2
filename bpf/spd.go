package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/internal/enum"
)

// Action is what the XDP program does with a LAN packet whose destination
// matches an SPD-mirror prefix. The values are the C enum spd_action.
type Action uint32

const (
	// ActionBypass hands the packet to the kernel (RFC 4301 BYPASS).
	ActionBypass = Action(xdpsecSpdActionSPD_BYPASS)
	// ActionProtect redirects the packet to the queue's XSK for ESP
	// encapsulation; with no socket registered the packet is dropped.
	ActionProtect = Action(xdpsecSpdActionSPD_PROTECT)
	// ActionDiscard drops the packet in XDP (RFC 4301 DISCARD).
	ActionDiscard = Action(xdpsecSpdActionSPD_DISCARD)
	// ActionDivert redirects the packet to user space for the exact SPD
	// check, for prefixes whose policy is not a function of the destination
	// alone. Fail-closed like ActionProtect.
	ActionDivert = Action(xdpsecSpdActionSPD_DIVERT)
)

var actionNames = [...]string{
	ActionBypass:  "bypass",
	ActionProtect: "protect",
	ActionDiscard: "discard",
	ActionDivert:  "divert",
}

func (a Action) String() string { return enum.Name(a, actionNames[:], "action") }

func (a Action) valid() bool { return a <= ActionDivert }

// SPDEntry is one destination prefix of the SPD mirror.
type SPDEntry struct {
	Prefix netip.Prefix
	Action Action
}

// lpmKeyV4 and lpmKeyV6 have the layout of struct lpm_v4_key / lpm_v6_key
// (the kernel's struct bpf_lpm_trie_key: a host-order prefix length followed
// by the address bytes in network order).
type lpmKeyV4 = xdpsecLpmV4Key
type lpmKeyV6 = xdpsecLpmV6Key

// spdKeys turns entries into canonical trie keys, split by family. It rejects
// what the tries cannot express unambiguously.
func spdKeys(entries []SPDEntry) (map[lpmKeyV4]Action, map[lpmKeyV6]Action, error) {
	v4 := make(map[lpmKeyV4]Action)
	v6 := make(map[lpmKeyV6]Action)
	for i, e := range entries {
		if !e.Prefix.IsValid() {
			return nil, nil, fmt.Errorf("spd entry %d: invalid prefix %q", i, e.Prefix)
		}
		if !e.Action.valid() {
			return nil, nil, fmt.Errorf("spd entry %d (%s): unknown action %d", i, e.Prefix, uint32(e.Action))
		}
		addr := e.Prefix.Addr() // netip.Prefix never carries a zone
		// An IPv4-mapped IPv6 prefix never matches a packet on the wire
		// (IPv4 packets are looked up in spd_v4), so accepting it would
		// silently not enforce the policy.
		if addr.Is4In6() {
			return nil, nil, fmt.Errorf("spd entry %d (%s): IPv4-mapped IPv6 prefix; use the IPv4 form", i, e.Prefix)
		}
		p := e.Prefix.Masked()
		if addr.Is4() {
			k := lpmKeyV4{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
			if prev, dup := v4[k]; dup && prev != e.Action {
				return nil, nil, fmt.Errorf("spd entry %d (%s): conflicting actions %s and %s for the same prefix", i, p, prev, e.Action)
			}
			v4[k] = e.Action
			continue
		}
		k := lpmKeyV6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
		if prev, dup := v6[k]; dup && prev != e.Action {
			return nil, nil, fmt.Errorf("spd entry %d (%s): conflicting actions %s and %s for the same prefix", i, p, prev, e.Action)
		}
		v6[k] = e.Action
	}
	return v4, v6, nil
}

// syncTrie makes m hold exactly want: it first writes every wanted entry
// (each update replaces one element atomically, so a prefix that keeps its key
// never disappears) and only then deletes keys that are no longer wanted.
func syncTrie[K comparable, V ~uint32](m *ebpf.Map, want map[K]V) error {
	for k, a := range want {
		if err := m.Put(k, uint32(a)); err != nil {
			return fmt.Errorf("put: %w", err)
		}
	}
	var (
		k     K
		v     uint32
		stale []K
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete stale: %w", err)
		}
	}
	return nil
}
