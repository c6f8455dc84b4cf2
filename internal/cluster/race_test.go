//go:build race

package cluster

// raceEnabled: the race detector slows everything several times over, so
// the tests check what is safe, not how fast.
const raceEnabled = true
