package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalAddrs: local_addrs takes a list or strongSwan's comma-separated
// string, both families; local_addr keeps working as a one-element list;
// the single-address LocalAddr (default identity) is the first of the
// remote's family; errors carry file:line: field.
func TestLocalAddrs(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	base := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	const one = "    local_addr: 192.0.2.1\n"
	for _, tc := range []struct {
		name, with, remote string
		want               []string // local addresses; nil: an error
		first              string   // LocalAddr
		err                string
	}{
		{"local_addr alone", one, "", nil, "192.0.2.1", ""},
		{"list", "    local_addrs: [2001:db8:f::1, 192.0.2.1]\n", "", []string{"2001:db8:f::1", "192.0.2.1"}, "192.0.2.1", ""},
		{"strongswan string", "    local_addrs: 192.0.2.1, 2001:db8:f::1\n", "", []string{"192.0.2.1", "2001:db8:f::1"}, "192.0.2.1", ""},
		{"ipv6 remote", "    local_addrs: [192.0.2.1, 2001:db8:f::1]\n", "2001:db8:f::2", []string{"192.0.2.1", "2001:db8:f::1"}, "2001:db8:f::1", ""},
		{"one element", "    local_addrs: [192.0.2.1]\n", "", []string{"192.0.2.1"}, "192.0.2.1", ""},
		{"both keys", one + "    local_addrs: [192.0.2.1]\n", "", nil, "", "gw.yaml:6: connections[0].local_addrs: give local_addr or local_addrs, not both"},
		{"any", "    local_addrs: [\"%any\"]\n", "", nil, "", "gw.yaml:5: connections[0].local_addrs[0]: \"%any\": xdpsec binds each local address, list them"},
		{"not an address", "    local_addrs: [192.0.2.1, wan0]\n", "", nil, "", "gw.yaml:5: connections[0].local_addrs[1]: \"wan0\" is not a unicast address"},
		{"twice", "    local_addrs: [192.0.2.1, 192.0.2.1]\n", "", nil, "", "gw.yaml:5: connections[0].local_addrs[1]: 192.0.2.1 given twice"},
		{"empty list", "    local_addrs: []\n", "", nil, "", "gw.yaml:5: connections[0].local_addrs: empty: give at least one address"},
		{"no family", "    local_addrs: [2001:db8:f::1]\n", "", nil, "", "gw.yaml:5: connections[0].local_addrs: no address of the remote address's family (192.0.2.2)"},
		{"none", "", "", nil, "", "gw.yaml:4: connections[0].local_addr: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(base, one, tc.with, 1)
			if tc.remote != "" {
				y = strings.Replace(y, "remote_addr: 192.0.2.2", "remote_addr: "+tc.remote, 1)
			}
			cn := parseConn(t, filepath.Join(dir, "gw.yaml"), y, tc.err)
			if cn == nil {
				return
			}
			got := addrStrings(cn.LocalAddrs)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || cn.LocalAddr != netip.MustParseAddr(tc.first) {
				t.Errorf("local_addrs %v, LocalAddr %v; want %v, %v", got, cn.LocalAddr, tc.want, tc.first)
			}
			if want := tc.first; len(cn.Locals()) == 0 || cn.Local.ID.String() != want {
				t.Errorf("local id %v, want %v", cn.Local.ID, want)
			}
		})
	}
}

// TestRemoteAddrs: remote_addrs lists the peer's addresses (RemoteAddr is
// the first, the default remote identity too), %any alone is any peer,
// and the local address the identity takes is of the first remote
// address's family that a local address has.
func TestRemoteAddrs(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	base := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	base = strings.Replace(base, "    start_action: start\n", "", 1)
	base = strings.Replace(base, "    remote_id: gw-b.example\n", "", 1)
	for _, tc := range []struct {
		name, local, remote string
		remotes             []string
		first, id, err      string
	}{
		{"list", "local_addr: 192.0.2.1", "remote_addrs: [192.0.2.2, 192.0.2.3]", []string{"192.0.2.2", "192.0.2.3"}, "192.0.2.1", "192.0.2.2", ""},
		{"family order", "local_addrs: [192.0.2.1, 2001:db8:f::1]", "remote_addrs: 2001:db8:f::2, 192.0.2.2", []string{"2001:db8:f::2", "192.0.2.2"}, "2001:db8:f::1", "2001:db8:f::2", ""},
		{"any", "local_addr: 192.0.2.1", "remote_addrs: \"%any\"", nil, "192.0.2.1", "", ""},
		{"any with addresses", "local_addr: 192.0.2.1", "remote_addrs: [\"%any\", 192.0.2.2]", nil, "", "", "gw.yaml:6: connections[0].remote_addrs[0]: %any with addresses"},
		{"both keys", "local_addr: 192.0.2.1\n    remote_addr: 192.0.2.2", "remote_addrs: [192.0.2.3]", nil, "", "", "gw.yaml:6: connections[0].remote_addrs: give remote_addr or remote_addrs, not both"},
		{"no family", "local_addr: 192.0.2.1", "remote_addrs: [2001:db8:f::2]", nil, "", "", "gw.yaml:6: connections[0].remote_addrs: no address of local_addr 192.0.2.1's family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(base, "local_addr: 192.0.2.1", tc.local, 1)
			y = strings.Replace(y, "remote_addr: 192.0.2.2", tc.remote, 1)
			cn := parseConn(t, filepath.Join(dir, "gw.yaml"), y, tc.err)
			if cn == nil {
				return
			}
			got := addrStrings(cn.RemoteAddrs)
			if strings.Join(got, ",") != strings.Join(tc.remotes, ",") || cn.LocalAddr.String() != tc.first || cn.Local.ID.String() != tc.first {
				t.Errorf("remote_addrs %v, local %v (id %v); want %v, %v", got, cn.LocalAddr, cn.Local.ID, tc.remotes, tc.first)
			}
			if id := cn.Remote.ID; (tc.id == "") != (id.Type == 0) || tc.id != "" && id.String() != tc.id {
				t.Errorf("remote id %v, want %q", id, tc.id)
			}
		})
	}
}

// parseConn parses y as file and returns its first connection, or nil
// after checking that the error contains wantErr when that is set.
func parseConn(t *testing.T, file, y, wantErr string) *Connection {
	t.Helper()
	c, err := Parse(file, []byte(y))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v\nwant %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &c.IKE.Connections[0]
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
