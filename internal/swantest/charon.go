package swantest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// CharonBin is where Debian installs charon.
const CharonBin = "/usr/lib/ipsec/charon"

// Plugins is the plugin list the tests' charon loads: kernel-libipsec
// (user-space ESP over a TUN device, loaded before kernel-netlink) so that
// the kernel needs no ESP.
const Plugins = "random nonce aes sha1 sha2 hmac gcm chapoly curve25519 gmp openssl kdf x509 pubkey pem pkcs1 vici socket-default kernel-libipsec kernel-netlink"

// CharonConfig is how to start one charon.
type CharonConfig struct {
	// Dir holds its configuration, VICI socket, log and /run; it is
	// created if missing.
	Dir string
	// Settings are extra lines of strongswan.conf's charon section
	// ("retransmit_tries = 3").
	Settings []string
	// Swanctl is the swanctl.conf loaded once charon answers ("": none).
	Swanctl string
	// Stop is how long charon has to stop on SIGTERM before it is killed
	// (0: 5 s).
	Stop time.Duration
}

// Charon is strongSwan's daemon running in a lab namespace with its own
// configuration, VICI socket and /run (5.9.8 writes /var/run/charon.pid
// whatever it is told). It stops when the test ends; a failed test logs
// charon's log.
type Charon struct {
	NS   *testlab.Netns
	Dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed once charon has exited
}

// StartCharon starts charon in ns, waits until its VICI socket is there
// and loads cfg.Swanctl. Callers check Need first.
func StartCharon(tb testing.TB, ns *testlab.Netns, cfg CharonConfig) *Charon {
	tb.Helper()
	c := &Charon{NS: ns, Dir: cfg.Dir}
	if err := os.MkdirAll(filepath.Join(c.Dir, "run"), 0o700); err != nil {
		tb.Fatal(err)
	}
	settings := ""
	for _, s := range cfg.Settings {
		settings += "\t" + s + "\n"
	}
	conf := fmt.Sprintf(`charon {
	load = %s
%s	plugins {
		vici {
			socket = %s
		}
	}
	filelog {
		log {
			path = %s/charon.log
			flush_line = yes
			default = 1
			ike = 2
			cfg = 2
		}
	}
}
`, Plugins, settings, c.Vici(), c.Dir)
	if err := os.WriteFile(filepath.Join(c.Dir, "strongswan.conf"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	c.cmd = exec.Command("nsenter", "--net="+ns.Path(), "--", "unshare", "--mount", "--propagation", "private",
		"sh", "-c", fmt.Sprintf("mount --bind '%s/run' /run && exec %s", c.Dir, CharonBin))
	c.cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.Dir, "strongswan.conf"))
	out, err := os.Create(filepath.Join(c.Dir, "charon.stdout"))
	if err != nil {
		tb.Fatal(err)
	}
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		out.Close()
		tb.Fatalf("start charon: %v", err)
	}
	c.done = make(chan struct{})
	done := c.done
	go func() { c.cmd.Wait(); out.Close(); close(done) }()
	stop := cfg.Stop
	if stop == 0 {
		stop = 5 * time.Second
	}
	tb.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stop):
			c.cmd.Process.Kill()
			<-done
		}
		if tb.Failed() {
			b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
			tb.Logf("charon log:\n%s", b)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(c.Dir, "charon.vici")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.stdout"))
			tb.Fatalf("charon did not open its VICI socket:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cfg.Swanctl != "" {
		file := filepath.Join(c.Dir, "swanctl.conf")
		if err := os.WriteFile(file, []byte(cfg.Swanctl), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.Swanctl(tb, "--load-all", "--file", file)
	}
	return c
}

// Vici is the URI of charon's VICI socket.
func (c *Charon) Vici() string { return "unix://" + filepath.Join(c.Dir, "charon.vici") }

// Swanctl runs `swanctl cmd args...` against this charon and returns its
// output; a failure fails tb.
func (c *Charon) Swanctl(tb testing.TB, cmd string, args ...string) string {
	tb.Helper()
	out, err := c.SwanctlErr(cmd, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// SwanctlErr is Swanctl for calls that may fail without failing the test
// (a rekey refused because one is under way).
func (c *Charon) SwanctlErr(cmd string, args ...string) (string, error) {
	a := append([]string{"--net=" + c.NS.Path(), "--", "swanctl", cmd, "--uri", c.Vici()}, args...)
	out, err := exec.Command("nsenter", a...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swanctl %s %v: %v\n%s", cmd, args, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Stop signals charon and waits until it is gone (at most 5 s), then
// removes its VICI socket, which would fool the wait of a charon started
// next in the same directory.
func (c *Charon) Stop(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		tb.Fatalf("charon did not stop on %v", sig)
	}
	os.Remove(filepath.Join(c.Dir, "charon.vici"))
}

// WaitSA lists the IKE SAs of conn until ready accepts the listing, at
// most timeout, and returns the listing; if it never does, tb fails with
// the last one.
func (c *Charon) WaitSA(tb testing.TB, conn string, timeout time.Duration, ready func(list string) bool) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var list string
	for {
		list = c.Swanctl(tb, "--list-sas", "--ike", conn)
		if strings.Contains(list, conn+": #") && ready(list) {
			return list
		}
		if time.Now().After(deadline) {
			tb.Fatalf("charon has no SA for %s as wanted within %v:\n%s", conn, timeout, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
