// Package etcdtest holds what the tests of package cluster and its users
// share: free localhost URLs for embedded etcd members, and waiting for a
// condition.
package etcdtest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// FreeURL is an http URL on a free localhost port.
func FreeURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("http://%s", l.Addr())
}

// WaitFor polls cond every millisecond until it holds or d passes, and
// reports whether it held.
func WaitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
