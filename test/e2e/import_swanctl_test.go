package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/swantest"
)

// TestImportSwanctl moves gwA from strongSwan to xdpsec the way an
// operator would: the swanctl.conf gwA would have as a strongSwan gateway
// (the mirror of the one charon runs as gwB in TestIKEStrongSwan, with
// start_action = start) goes through `xdpsec import swanctl`; the
// imported configuration, with only the lab's own paths added, brings
// the tunnel up against charon and carries ping both ways, IPv4 and IPv6.
func TestImportSwanctl(t *testing.T) {
	needLab(t)
	needCharon(t)
	const ikeProp, espProp = "aes256gcm16-prfsha384-x25519", "aes128gcm16-x25519"
	l := newLab(t, "")
	var key [32]byte
	rand.Read(key[:])
	psk := hex.EncodeToString(key[:])
	// startCharon reads the PSK from here.
	if err := os.WriteFile(filepath.Join(l.dir, "psk"), []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	swanA := swantest.GwB(gwB4, gwA4, ikeProp, espProp).Mirror()
	swanA.StartAction = "start"
	dirA := filepath.Join(l.dir, "swanctl-a")
	if err := os.MkdirAll(dirA, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, "swanctl.conf"), []byte(swanA.PSKConf(psk)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgA := filepath.Join(l.dir, "gw-a.yaml")
	out, err := exec.Command(xdpsecBin, "import", "swanctl", "-o", cfgA, "-lan", "lan0", "-wan", "wan0",
		filepath.Join(dirA, "swanctl.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("xdpsec import swanctl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 connections converted, 0 written as comments") {
		t.Errorf("xdpsec import swanctl: %s", out)
	}
	imported, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(imported), psk) {
		t.Fatal("the PSK is in the imported YAML")
	}
	// What a lab gateway needs beyond the tunnel: its own pins, socket
	// and state, nothing left behind.
	lab := fmt.Sprintf("pin_path: %s\non_stop: detach\ncontrol: %s\nstate_dir: %s\n",
		l.pinPath("gA"), l.sockPath("gA"), filepath.Join(l.dir, "state-gA"))
	if err := os.WriteFile(cfgA, append(imported, lab...), 0o644); err != nil {
		t.Fatal(err)
	}

	l.startCharon(t, ikeProp, espProp)
	start := time.Now()
	gA := l.start(t, "gA", cfgA)
	sas := waitIKE(t, l.sockPath("gA"), 1, 10*time.Second)
	if ia := sas[0]; !ia.Initiator || ia.Proposal != ikeProp || ia.RemoteID != "gw-b.lab" || ia.Children[0].Name != "net" {
		t.Errorf("xdpsec's IKE SA from the imported configuration: %+v", ia)
	}
	t.Logf("tunnel up %v after the imported configuration started", time.Since(start).Round(time.Millisecond))
	l.pingPairs(t, 5, [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}, {"hB", hostA6}})
	l.stopClean(t, gA)
}
