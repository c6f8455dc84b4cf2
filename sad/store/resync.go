package store

// Resync republishes the SPD to the mirror (Mirror.SyncPolicies) with no
// change of its own, serialised with every other publication: for a
// mirror whose output depends on more than the store, such as the
// gateway's own addresses, which a cluster adds and removes at run time.
func (s *Store) Resync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncPolicies()
}
