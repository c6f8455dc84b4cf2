package store

import (
	"slices"
	"testing"
)

// TestResync: Resync publishes the SPD again with nothing changed, and
// holds the store's lock meanwhile (an Install waits for it).
func TestResync(t *testing.T) {
	m := &recMirror{}
	s, _, _ := testStore(t, m)
	m.log = nil
	locked := false
	m.at = func(string) {
		locked = !s.mu.TryLock()
		if !locked {
			s.mu.Unlock()
		}
	}
	if err := s.Resync(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.log, []string{"sync"}) || !locked {
		t.Errorf("Resync: mirror calls %v, store locked during the sync %v", m.log, locked)
	}
}
