package control

import (
	"strings"
	"testing"
)

// TestClusterMoveNeedsAdmin: a cluster move changes state: members of
// the read group may show the cluster but not move a group.
func TestClusterMoveNeedsAdmin(t *testing.T) {
	s := &Server{access: Access{ReadGID: 100, AdminGID: 200}, self: 1}
	reader, admin := peer{uid: 5, gid: 100}, peer{uid: 6, gid: 7, groups: []uint32{200}}
	if msg := s.refuse(reader, CommandSnapshot); msg != "" {
		t.Errorf("reader refused the snapshot: %s", msg)
	}
	if msg := s.refuse(reader, CommandClusterMove); !strings.Contains(msg, "permission denied: cluster-move changes state") {
		t.Errorf("reader may move a group: %q", msg)
	}
	if msg := s.refuse(admin, CommandClusterMove); msg != "" {
		t.Errorf("admin refused: %s", msg)
	}
}
