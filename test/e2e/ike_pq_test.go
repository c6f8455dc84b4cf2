package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// TestIKEPostQuantum runs two xdpsec gateways whose IKE SA is a hybrid of
// X25519 in IKE_SA_INIT and ML-KEM-768 in an IKE_INTERMEDIATE exchange
// (RFC 9370, RFC 9242). Both sides must show the hybrid proposal, the WAN
// must carry exactly one IKE_INTERMEDIATE exchange with the ML-KEM key
// share, traffic must flow both ways, and tshark must decrypt IKE_AUTH
// and verify the ESP frames with the key log alone: that proves the key
// log holds the keys after the ML-KEM update, not the IKE_SA_INIT ones.
func TestIKEPostQuantum(t *testing.T) {
	needLab(t)
	const proposal = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	l := newLab(t, "")
	a, b := l.ikeConfigs(t, proposal, "aes256gcm16", "start")
	// Only gwA rekeys the IKE SA, so the two ends do not collide.
	conf, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), "    dpd_action: clear\n", "    dpd_action: clear\n    rekey_time: 6s\n", 1))
	if err := os.WriteFile(a, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	capAll := l.capture(t, "wan", "a0", 0)
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	sockA, sockB := l.sockPath("gA"), l.sockPath("gB")
	sasA := waitIKE(t, sockA, 1, 10*time.Second)
	sasB := waitIKE(t, sockB, 1, 5*time.Second)
	ia, ib := sasA[0], sasB[0]
	if ia.Proposal != proposal || ib.Proposal != proposal || ia.SPIi != ib.SPIi || ia.SPIr != ib.SPIr {
		t.Errorf("IKE SAs: gA %+v, gB %+v; want both %s", ia, ib, proposal)
	}
	ca, cb := ia.Children[0], ib.Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn || !strings.HasPrefix(ca.Proposal, "aes256gcm16") {
		t.Errorf("Child SAs disagree: gA %+v, gB %+v", ca, cb)
	}

	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}})
	l.iperfTCP(t, "through the hybrid-keyed tunnel", false)

	// The IKE rekey (rekey_time 6s, jittered by up to 10%).
	var ra, rb []control.IKESA
	deadline := time.Now().Add(15 * time.Second)
	for {
		ra, rb = showIKE(t, sockA), showIKE(t, sockB)
		if len(ra) == 1 && len(rb) == 1 && ra[0].SPIi != ia.SPIi && ra[0].SPIi == rb[0].SPIi && ra[0].State == "ESTABLISHED" && rb[0].State == "ESTABLISHED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no IKE rekey within 15 s: gA %+v, gB %+v", ra, rb)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ra[0].Proposal != proposal || rb[0].Proposal != proposal {
		t.Errorf("rekeyed IKE SA: gA %q, gB %q, want %s", ra[0].Proposal, rb[0].Proposal, proposal)
	}
	if len(ra[0].Children) != 1 || ra[0].Children[0].SPIIn != ca.SPIIn {
		t.Errorf("Child SA did not move to the rekeyed IKE SA: %+v", ra[0].Children)
	}
	for _, p := range [][2]string{{"hA", hostB4}, {"hB", hostA6}} {
		if got := l.pingAll(p[0], p[1], 10); got != 10 {
			t.Errorf("after the IKE rekey, ping %s -> %s: %d of 10 answered\n%s", p[0], p[1], got, l.diagnose())
		}
	}

	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	// IKE_SA_INIT announces IKE_INTERMEDIATE and offers ADDKE1 = ML-KEM-768
	// (transform type 6, ID 36); then one IKE_INTERMEDIATE exchange, whose
	// request carries the 1184-octet encapsulation key, so the frame is big.
	inter := tshark(t, pcap, nil, "-Y", "isakmp.exchangetype == 43", "-T", "fields", "-e", "frame.len", "-e", "isakmp.flags")
	if len(inter) != 2 {
		t.Errorf("%d IKE_INTERMEDIATE messages on the WAN, want 2 (request and response): %q", len(inter), inter)
	}
	for _, f := range inter {
		n, err := strconv.Atoi(strings.Split(f, "\t")[0])
		if err != nil || n < 1088 {
			t.Errorf("IKE_INTERMEDIATE frame of %d octets cannot hold an ML-KEM-768 key share", n)
		}
	}
	if n := len(tshark(t, pcap, nil, "-Y", "isakmp.exchangetype == 44")); n < 2 {
		t.Errorf("%d IKE_FOLLOWUP_KE messages on the WAN, want a request and a response per IKE rekey", n)
	}
	if n := len(tshark(t, pcap, nil, "-Y", "isakmp.exchangetype == 34 and isakmp.notify.msgtype == 16438")); n != 2 {
		t.Errorf("%d IKE_SA_INIT messages with INTERMEDIATE_EXCHANGE_SUPPORTED, want 2", n)
	}
	if n := len(tshark(t, pcap, nil, "-Y", "isakmp.exchangetype == 34 and isakmp.tf.type == 6")); n != 2 {
		t.Errorf("%d IKE_SA_INIT messages with an ADDKE1 transform, want 2", n)
	}
	// The key log has one IKE row per SA (the first and its rekeyed
	// successors), with the final keys: IKE_AUTH decrypts with it and
	// shows the PSK AUTH payloads.
	table, err := os.ReadFile(filepath.Join(l.dir, "keylog-a", "ikev2_decryption_table"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(table)), "\n")
	if len(rows) < 2 || !strings.HasPrefix(rows[0], strings.ToLower(ia.SPIi+","+ia.SPIr+",")) {
		t.Errorf("ikev2_decryption_table: %d rows, want one per IKE SA, the first for %s_i (keys after IKE_INTERMEDIATE):\n%s", len(rows), ia.SPIi, table)
	}
	auth := 0
	for _, r := range decryptIKEWithKeyLog(t, pcap, filepath.Join(l.dir, "keylog-a")) {
		if f := strings.Split(r, "\t"); len(f) == 2 && f[0] == "35" && f[1] == "2" {
			auth++
		}
	}
	if auth != 2 {
		t.Errorf("tshark decrypted %d IKE_AUTH messages with the key log, want 2", auth)
	}
	uat := keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))
	if good := decryptWithKeyLog(t, pcap, uat); good < 40 {
		t.Errorf("only %d ESP frames verified", good)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}
