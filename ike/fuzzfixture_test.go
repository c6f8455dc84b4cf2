package ike

import (
	"bytes"
	"sync"
	"testing"
)

// fuzzConns caches the responder's side of pskPair per IKE proposal. The
// fuzz targets that need an engine build a fresh one per input (so no
// input sees another's state), and parsing the proposals and clearing
// the default per-source table each time cost several times the input
// itself: FuzzReassembly ran 7 inputs a minute.
var fuzzConns sync.Map // IKE proposal → Connection

// fuzzEngine builds an engine (loop not running) with one PSK responder
// connection under the IKE proposal ike.
func fuzzEngine(t testing.TB, ike string) *Engine {
	t.Helper()
	v, ok := fuzzConns.Load(ike)
	if !ok {
		_, cr := pskPair(t, ike, "aes128gcm16")
		v, _ = fuzzConns.LoadOrStore(ike, cr)
	}
	cr := v.(Connection)
	// The PSKs are the engine's to wipe.
	cr.Local.PSK, cr.Remote.PSK = bytes.Clone(cr.Local.PSK), bytes.Clone(cr.Remote.PSK)
	// These engines see no IKE_SA_INIT: a small per-source table will do.
	e, err := newEngine(Config{Connections: []Connection{cr}, Defence: Defence{RateLimitSlots: 64}}, newMemConn(), NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	return e
}
