//go:build race

package fastpath

// raceEnabled: the race detector empties sync.Pools on purpose (the HMAC
// suites keep their state in one), so allocation counts of those suites
// are only meaningful without it.
const raceEnabled = true
