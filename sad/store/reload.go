package store

import (
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/sad/spd"
)

// ReplaceConfigured swaps the configuration's policies and traps for a
// new set in one SPD publication (live reload): the workers see the old
// SPD or the new one, never a mix. A policy in both sets (the same
// *spd.Policy) stays with the SA it points at and its ReqID binding, so
// an unchanged tunnel is not touched. The policies the store made itself
// stay where they are: narrowed ones with their SAs, and the traps
// InstallTrap added for a tag keep reports true of. A configured trap
// that goes is unbound from its ReqID: its connection's SAs are the
// caller's to delete first.
func (s *Store) ReplaceConfigured(policies []*spd.Policy, traps []Trap, keep func(tag any) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[*spd.Policy]bool{}
	for _, p := range policies {
		next[p] = true
	}
	for _, t := range traps {
		next[t.Policy] = true
	}
	var head, extra []*spd.Policy
	for _, p := range s.spd.Policies() {
		switch {
		case s.dynamic[p]:
			head = append(head, p)
		case s.configured[p]:
		default: // an InstallTrap policy
			if tag, ok := s.tags[p]; ok && keep != nil && keep(tag) {
				extra = append(extra, p)
			}
		}
	}
	list := slices.Concat(head, policies)
	newTraps := make([]*spd.Policy, 0, len(traps)+len(extra))
	for _, t := range traps {
		list = append(list, t.Policy)
		newTraps = append(newTraps, t.Policy)
	}
	list = append(list, extra...)
	newTraps = append(newTraps, extra...)
	if err := s.spd.Replace(list); err != nil {
		return fmt.Errorf("spd: %w", err)
	}
	keepSet := map[*spd.Policy]bool{}
	for _, p := range list {
		keepSet[p] = true
	}
	for _, p := range s.traps {
		if !keepSet[p] {
			delete(s.tags, p)
			if r := s.owner[p]; r != 0 {
				delete(s.owner, p)
				s.bound[r] = slices.DeleteFunc(s.bound[r], func(q *spd.Policy) bool { return q == p })
			}
		}
	}
	for _, t := range traps {
		if t.Tag != nil {
			s.tags[t.Policy] = t.Tag
		} else {
			delete(s.tags, t.Policy)
		}
	}
	s.traps = newTraps
	s.configured = next
	s.gen++
	s.notify(Event{Kind: Reconfigured})
	return s.syncPolicies()
}
