package swantest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// TestCheckNamesPackage hides plugins from charon and swanctl the way a
// fresh machine lacks them (a private mount namespace with a copy of the
// plugin directory bind-mounted over it) and expects the check to fail
// naming the Debian package, quickly. Root; it starts charon.
func TestCheckNamesPackage(t *testing.T) {
	testlab.RequireRoot(t, "charon runs in a namespace of its own")
	const plugins = "/usr/lib/ipsec/plugins"
	if _, err := os.Stat(filepath.Join(plugins, "libstrongswan-openssl.so")); err != nil {
		t.Skip("strongSwan with its standard plugins is not installed")
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remove []string
		want   string
	}{
		// What `apt-get install --no-install-recommends` left out on a
		// fresh machine: swanctl is the first to miss it.
		{"no standard plugins", []string{"openssl", "gcm", "aesni", "agent"},
			"swanctl has no openssl plugin, which it needs to load the tests' ECDSA keys and certificates; install: apt-get install libstrongswan-standard-plugins"},
		{"no gcm, no libipsec", []string{"gcm", "kernel-libipsec"},
			"charon did not load the plugins gcm kernel-libipsec the tests list; install: apt-get install libcharon-extra-plugins libstrongswan-standard-plugins"},
		{"none missing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("cp", "-a", plugins+"/.", dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			for _, p := range tc.remove {
				os.Remove(filepath.Join(dir, "libstrongswan-"+p+".so"))
			}
			out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
				"mount --bind \"$1\" "+plugins+" && exec \"$2\"", "sh", dir, script).CombinedOutput()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("check failed on a complete install: %v\n%s", err, out)
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
				t.Errorf("check: %v\n%s\nwant exit 1 and %q", err, out, tc.want)
			}
		})
	}
}
