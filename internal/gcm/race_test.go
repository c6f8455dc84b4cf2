//go:build race

package gcm

// raceEnabled trims the longest loops under the race detector, which slows
// the portable GHASH tenfold; normal runs cover every length.
const raceEnabled = true
