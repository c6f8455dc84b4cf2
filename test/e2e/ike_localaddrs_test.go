package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/swantest"
)

// loadConf replaces charon's connections and secrets with those of text.
func (c *charon) loadConf(t *testing.T, name, text string) {
	t.Helper()
	f := filepath.Join(c.dir, name)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c.swanctl(t, "--load-all", "--file", f)
}

// espFamilies counts the ESP-in-UDP frames of a capture by outer family.
func espFamilies(t *testing.T, pcap string) (v4, v6 int) {
	t.Helper()
	v4 = len(tshark(t, pcap, nil, "-Y", "ip and udp.port == 4500 and esp"))
	v6 = len(tshark(t, pcap, nil, "-Y", "ipv6 and udp.port == 4500 and esp"))
	return v4, v6
}

// TestIKEStrongSwanIPv6 runs IKE over IPv6 outer addresses against
// strongSwan: xdpsec's gwA has local_addrs [192.0.2.1, 2001:db8:f::1] and
// remote_addr 2001:db8:f::2, charon as gwB the mirror over IPv6. Each end
// initiates once. xdpsec picks its IPv6 address (the first of the peer's
// family) as initiator and answers from it as responder; the Child SA's
// ESP-in-UDP is IPv6-outer on the wire (no IPv4 ESP at all), ping (IPv4
// and IPv6 inside) and iperf3 cross, and tshark verifies the IPv6-outer
// ESP with xdpsec's key log alone.
func TestIKEStrongSwanIPv6(t *testing.T) {
	needLab(t)
	needCharon(t)
	const ikeP, espP = "aes128gcm16-prfsha256-ecp256", "aes256gcm16"
	for _, xdpsecInitiates := range []bool{true, false} {
		name := "strongswan-initiates"
		if xdpsecInitiates {
			name = "xdpsec-initiates"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, "")
			a, _ := l.ikeConfigs(t, ikeP, espP, "none")
			b, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			y := strings.Replace(string(b), "local_addr: "+gwA4, "local_addrs: ["+gwA4+", "+gwA6+"]", 1)
			y = strings.Replace(y, "remote_addr: "+gwB4, "remote_addr: "+gwB6, 1)
			if err := os.WriteFile(a, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			psk, err := os.ReadFile(filepath.Join(l.dir, "psk"))
			if err != nil {
				t.Fatal(err)
			}
			capAll := l.capture(t, "wan", "a0", 0)
			ch := l.startCharon(t, ikeP, espP)
			ch.loadConf(t, "swanctl-v6.conf", swantest.GwB(gwB6, gwA6, ikeP, espP).PSKConf(strings.TrimSpace(string(psk))))
			gA := l.start(t, "gA", a)
			sockA := l.sockPath("gA")
			if xdpsecInitiates {
				t.Log(ikeAction(t, sockA, "initiate", "site"))
			} else {
				ch.swanctl(t, "--initiate", "--child", "net", "--timeout", "10")
			}
			ia := waitIKE(t, sockA, 1, 10*time.Second)[0]
			if ia.Initiator != xdpsecInitiates || !strings.HasPrefix(ia.Local, "["+gwA6+"]:") || !strings.HasPrefix(ia.Remote, "["+gwB6+"]:") || !ia.NATT {
				t.Errorf("xdpsec's IKE SA is not over IPv6 between %s and %s: %+v", gwA6, gwB6, ia)
			}
			list := ch.swanctl(t, "--list-sas")
			if !strings.Contains(list, gwA6) || !strings.Contains(list, "INSTALLED") ||
				!strings.Contains(list, fmt.Sprintf("%08x", ia.Children[0].SPIOut)) {
				t.Errorf("swanctl --list-sas does not show the IPv6 SAs xdpsec has (%+v):\n%s", ia, list)
			}

			l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}, {"hB", hostA6}})
			l.iperfTCP(t, "xdpsec<->charon over IPv6", true)

			pcap := capAll.stop()
			ikeNoLeak(t, pcap)
			if v4, v6 := espFamilies(t, pcap); v6 == 0 || v4 != 0 {
				t.Errorf("ESP-in-UDP frames: %d IPv4-outer, %d IPv6-outer; want IPv6 only", v4, v6)
			}
			uat := keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))
			for _, row := range uat {
				if !strings.HasPrefix(row, `"IPv6"`) {
					t.Errorf("key log row is not IPv6: %s", row)
				}
			}
			if good := decryptWithKeyLog(t, pcap, uat); good < 80 {
				t.Errorf("only %d IPv6-outer ESP frames verified", good)
			}
			l.stopClean(t, gA)
		})
	}
}

// dualSwanctl is a swanctl.conf with two connections from one gateway,
// both listening on its IPv4 and IPv6 WAN addresses: site4 to the peer's
// IPv4 address carrying IPv4, site6 to its IPv6 address carrying IPv6,
// each with identities of its own (so neither IKE SA's INITIAL_CONTACT
// replaces the other's). me/peer are "a" or "b"; start is site4's
// child start_action ("" for none).
func dualSwanctl(me, peer, locals, remote4, remote6, psk, start string) string {
	ts := map[string][2]string{"a": {"198.18.1.0/24", "2001:db8:a::/64"}, "b": {"198.18.2.0/24", "2001:db8:b::/64"}}
	if start != "" {
		start = "\n\t\t\t\tstart_action = " + start
	}
	conn := func(name, remote, fam, lts, rts, start string) string {
		return fmt.Sprintf(`	%s {
		local_addrs = %s
		remote_addrs = %s
		proposals = aes128gcm16-prfsha256-x25519
		local {
			auth = psk
			id = gw-%s%s.lab
		}
		remote {
			auth = psk
			id = gw-%s%s.lab
		}
		children {
			net%s {
				local_ts = %s
				remote_ts = %s
				esp_proposals = aes128gcm16%s
			}
		}
	}
`, name, locals, remote, me, fam, peer, fam, fam, lts, rts, start)
	}
	return "connections {\n" +
		conn("site4", remote4, "4", ts[me][0], ts[peer][0], start) +
		conn("site6", remote6, "6", ts[me][1], ts[peer][1], "") +
		fmt.Sprintf("}\nsecrets {\n\tike-4 {\n\t\tid-a = gw-a4.lab\n\t\tid-b = gw-b4.lab\n\t\tsecret = \"%[1]s\"\n\t}\n"+
			"\tike-6 {\n\t\tid-a = gw-a6.lab\n\t\tid-b = gw-b6.lab\n\t\tsecret = \"%[1]s\"\n\t}\n}\n", psk)
}

// TestIKEDualStackImport: one xdpsec daemon serves an IPv4 and an IPv6
// strongSwan peer at the same time on local_addrs [192.0.2.1,
// 2001:db8:f::1]. Its configuration comes from `xdpsec import swanctl` on
// the swanctl.conf gwA would have as a strongSwan gateway, whose two
// connections list both local addresses: the import carries both over.
// xdpsec initiates site4 (IPv4 outer) at start, charon initiates site6
// (IPv6 outer) to it; both IKE SAs are up at once, each on its family,
// and ping and iperf3 cross both tunnels while the WAN carries ESP-in-UDP
// of both families.
func TestIKEDualStackImport(t *testing.T) {
	needLab(t)
	needCharon(t)
	l := newLab(t, "")
	var key [32]byte
	rand.Read(key[:])
	psk := hex.EncodeToString(key[:])
	if err := os.WriteFile(filepath.Join(l.dir, "psk"), []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	dirA := filepath.Join(l.dir, "swanctl-a")
	if err := os.MkdirAll(dirA, 0o700); err != nil {
		t.Fatal(err)
	}
	swanA := dualSwanctl("a", "b", gwA4+", "+gwA6, gwB4, gwB6, psk, "start")
	cfgA, imported := l.importSwanctl(t, dirA, swanA, "2 connections converted, 0 written as comments",
		"key_log: "+filepath.Join(l.dir, "keylog-a")+"\n")
	if n := strings.Count(string(imported), "local_addrs: ["+gwA4+", "+gwA6+"]"); n != 2 {
		t.Errorf("the import wrote both local addresses for %d of 2 connections:\n%s", n, imported)
	}

	capAll := l.capture(t, "wan", "a0", 0)
	ch := l.startCharon(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ch.loadConf(t, "swanctl-dual.conf", dualSwanctl("b", "a", gwB4+", "+gwB6, gwA4, gwA6, psk, ""))
	gA := l.start(t, "gA", cfgA)
	sock := l.sockPath("gA")
	waitIKE(t, sock, 1, 10*time.Second) // site4, started by xdpsec
	ch.swanctl(t, "--initiate", "--child", "net6", "--timeout", "10")
	sas := waitIKE(t, sock, 2, 10*time.Second)
	want := map[string][2]string{"site4": {gwA4 + ":", gwB4 + ":"}, "site6": {"[" + gwA6 + "]:", "[" + gwB6 + "]:"}}
	for _, sa := range sas {
		w, ok := want[sa.Connection]
		if !ok || !strings.HasPrefix(sa.Local, w[0]) || !strings.HasPrefix(sa.Remote, w[1]) || sa.Initiator != (sa.Connection == "site4") {
			t.Errorf("IKE SA %+v, want local %s* remote %s*", sa, w[0], w[1])
		}
		delete(want, sa.Connection)
	}
	if len(want) > 0 {
		t.Errorf("no IKE SA for %v", want)
	}
	list := ch.swanctl(t, "--list-sas")
	if strings.Count(list, "ESTABLISHED") != 2 || strings.Count(list, "INSTALLED") != 2 {
		t.Errorf("charon does not hold both tunnels:\n%s", list)
	}

	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}, {"hB", hostA6}})
	l.iperfTCP(t, "IPv4 tunnel (IPv4 outer)", true)
	if r := l.iperf(t, hostB6, "-t", "1", "-b", "300M"); r.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 over the IPv6 tunnel moved nothing: %+v", r)
	} else {
		t.Logf("iperf3 TCP IPv6 tunnel (IPv6 outer) A->B: %.0f Mbit/s", r.End.SumReceived.BitsPerSecond/1e6)
	}

	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	v4, v6 := espFamilies(t, pcap)
	t.Logf("ESP-in-UDP on the WAN: %d frames IPv4-outer, %d IPv6-outer", v4, v6)
	if v4 < 20 || v6 < 20 {
		t.Errorf("want ESP of both outer families: %d IPv4, %d IPv6", v4, v6)
	}
	if good := decryptWithKeyLog(t, pcap, keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))); good < 80 {
		t.Errorf("only %d ESP frames verified", good)
	}
	l.stopClean(t, gA)
}
