// Package testlab is what the tests that need root share: the skip when
// the test is not root, a hex decoder for test vectors, and the network
// namespace labs (namespaces, veth pairs, addresses, routes, neighbours)
// that the XDP, AF_XDP, traffic generator, strongSwan interop and
// end-to-end tests build. Every lab is named from a random tag so that
// labs of tests running at the same time, in one binary or several, never
// collide, and everything a lab makes goes away in the test's Cleanup.
//
// It is a test harness, in the manner of wireguard-go's tests/netns.sh:
// production code does not import it.
package testlab

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireRoot skips tb unless it runs as root with every one of tools on
// the PATH; why says what root is needed for ("network namespaces, XDP").
func RequireRoot(tb testing.TB, why string, tools ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root (" + why + ")")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("skipping: needs %s: %v", tool, err)
		}
	}
}

// RequireXDPLab is RequireRoot for a lab of namespaces and veth pairs
// with XDP programs and AF_XDP sockets on them.
func RequireXDPLab(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb, "network namespaces, veth pairs, XDP programs and AF_XDP sockets", "ip", "ethtool")
}

// Unhex decodes a hex test vector, ignoring white space and the "|" that
// vectors use to mark field boundaries; bad hex fails tb.
func Unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(strings.Fields(s), ""), "|", ""))
	if err != nil {
		tb.Fatalf("bad hex in test vector %q: %v", s, err)
	}
	return b
}

// Tag returns six random hex digits, for the names of a lab's namespaces
// and interfaces: with a prefix of up to seven characters and two of
// suffix, an interface name stays within the kernel's 15.
func Tag() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run runs a command in the test's own namespace and returns its combined
// output; a failure fails tb with the output.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
