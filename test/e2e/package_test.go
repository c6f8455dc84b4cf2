package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/config"
)

var overstrike = regexp.MustCompile(".\x08")

// TestDebianPackage: `make deb` builds a package whose control data and
// contents are what an operator expects (dpkg-deb -I, -c), whose unit
// passes `systemd-analyze verify` with no complaint, whose man pages
// render with `man -l` and no warning, whose example configuration is
// valid, and whose binary runs. As root it also installs the package,
// runs the installed xdpsec and purges it - inside a mount namespace of
// its own where /etc, /usr and /var are overlays on throwaway upper
// directories (and /run and /sys/fs/bpf fresh), so the machine's own
// files, dpkg database and users are never touched: a shared test machine
// stays as it was, whatever the package's scripts do.
func TestDebianPackage(t *testing.T) {
	needBinary(t)
	deb := buildDeb(t)
	dpkg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	info := dpkg("-I", deb)
	for _, want := range []string{"Package: xdpsec", "Architecture: ", "Section: net", "Depends: passwd", " conffiles", " postinst", " prerm", " postrm"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	if v := strings.TrimSpace(dpkg("-f", deb, "Version")); v == "" || v[0] < '0' || v[0] > '9' {
		t.Errorf("Version %q: a Debian version starts with a digit", v)
	}
	contents := dpkg("-c", deb)
	t.Logf("dpkg-deb -c %s:\n%s", filepath.Base(deb), contents)
	for _, want := range []string{"./usr/sbin/xdpsec", "./lib/systemd/system/xdpsec.service", "./etc/xdpsec/xdpsec.yaml",
		"./usr/share/man/man8/xdpsec.8.gz", "./usr/share/man/man5/xdpsec.yaml.5.gz", "./usr/lib/tmpfiles.d/xdpsec.conf"} {
		if !strings.Contains(contents, want+"\n") {
			t.Errorf("dpkg-deb -c lacks %s", want)
		}
	}
	ctrl := t.TempDir()
	dpkg("-e", deb, ctrl)
	if b, err := os.ReadFile(filepath.Join(ctrl, "conffiles")); err != nil || strings.TrimSpace(string(b)) != "/etc/xdpsec/xdpsec.yaml" {
		t.Errorf("conffiles: %q %v, want /etc/xdpsec/xdpsec.yaml", b, err)
	}
	x := t.TempDir()
	dpkg("-x", deb, x)
	bin := filepath.Join(x, "usr", "sbin", "xdpsec")

	t.Run("binary", func(t *testing.T) {
		for _, args := range [][]string{{"version"}, {"selftest", "-packets", "200"}, {"run", "--help"}} {
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Errorf("xdpsec %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// The example configuration is valid once its PSK file exists.
		dir := t.TempDir()
		psk := filepath.Join(dir, "site.psk")
		if err := os.WriteFile(psk, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(filepath.Join(x, "etc", "xdpsec", "xdpsec.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "xdpsec.yaml")
		if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(string(body), "/etc/xdpsec/site.psk", psk)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "run", "--check", "-c", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), ": ok (") {
			t.Errorf("xdpsec run --check on the packaged example: %v\n%s", err, out)
		}
		// The unit gives the daemon the directories the example uses.
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Wipe()
		unit, err := os.ReadFile(filepath.Join(x, "lib", "systemd", "system", "xdpsec.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"RuntimeDirectory=" + strings.TrimPrefix(filepath.Dir(c.Control), "/run/") + "\n",
			"StateDirectory=" + strings.TrimPrefix(c.StateDir, "/var/lib/") + "\n",
			"ReadWritePaths=" + c.StateDir + " " + filepath.Dir(c.Control) + "\n",
			"install -d -o xdpsec -g xdpsec -m 0700 " + filepath.Dir(c.PinPath) + " " + c.PinPath + " ",
			"ExecStart=/usr/sbin/xdpsec run -c /etc/xdpsec/xdpsec.yaml\n",
		} {
			if !strings.Contains(string(unit), want) {
				t.Errorf("the unit lacks %q (control %s, state_dir %s, pin_path %s)", want, c.Control, c.StateDir, c.PinPath)
			}
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			t.Skip("systemd-analyze is not installed (Debian package systemd; scripts/install-deps.sh installs it)")
		}
		// The unit as packaged, its ExecStart pointing at the extracted
		// binary (verify checks the commands exist).
		unit, err := os.ReadFile(filepath.Join(x, "lib", "systemd", "system", "xdpsec.service"))
		if err != nil {
			t.Fatal(err)
		}
		u := filepath.Join(t.TempDir(), "xdpsec.service")
		if err := os.WriteFile(u, []byte(strings.ReplaceAll(string(unit), "/usr/sbin/xdpsec", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", u)
		cmd.Dir = filepath.Dir(u)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("dpkg -i and purge", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root (dpkg -i in a private mount namespace)")
		}
		for _, tool := range []string{"unshare", "dpkg"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed", tool)
			}
		}
		tmp := t.TempDir()
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c", dpkgInstallScript, "dpkg-test", tmp, deb)
		out, err := cmd.CombinedOutput()
		t.Logf("install, run, purge:\n%s", out)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for _, want := range []string{"user: xdpsec:x:", "/var/lib/xdpsec: xdpsec xdpsec 700", "selftest passed:",
			"/usr/share/man/man8/xdpsec.8.gz", "/usr/share/man/man5/xdpsec.yaml.5.gz", "after purge: nothing left", "after purge: no user, no group"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in the output", want)
			}
		}
	})

	t.Run("man", func(t *testing.T) {
		if _, err := exec.LookPath("man"); err != nil {
			t.Skip("man is not installed (Debian packages man-db, groff-base; scripts/install-deps.sh installs them)")
		}
		for _, tc := range []struct {
			page string
			want []string
		}{
			{"usr/share/man/man8/xdpsec.8.gz", []string{"XDPSEC(8)", "COMMANDS", "xdpsec run [-c FILE]", "xdpsec show sa", "CAP_PERFMON", "Example:"}},
			{"usr/share/man/man5/xdpsec.yaml.5.gz", []string{"XDPSEC.YAML(5)", "CONNECTIONS", "REFERENCE", "control_admin_group", "esp_proposals"}},
		} {
			cmd := exec.Command("man", "--warnings", "-l", filepath.Join(x, tc.page))
			cmd.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=0", "PAGER=cat")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Errorf("man -l %s: %v\n%s", tc.page, err, stderr.String())
			}
			text := overstrike.ReplaceAllString(string(out), "") // bold and underline as a pipe gets them
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("man -l %s lacks %q", tc.page, w)
				}
			}
		}
	})
}

// dpkgInstallScript installs the package ($2) in a private mount
// namespace whose /etc, /usr and /var are overlays with upper directories
// under $1, runs it, purges it and lists what changed (dpkg's own
// database and logs aside): nothing may.
const dpkgInstallScript = `set -eu
T=$1 DEB=$2
for d in etc usr var; do
	mkdir -p "$T/$d-up" "$T/$d-work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/$d-up,workdir=$T/$d-work" "/$d"
done
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
files() { find /etc /usr /var -xdev \( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache \) -prune -o -print | sort; }
# As on a fresh machine (this one's other runs may have made these; the
# overlay hides them from here only).
rm -rf /etc/xdpsec /var/lib/xdpsec
if getent passwd xdpsec >/dev/null; then userdel xdpsec; fi
if getent group xdpsec >/dev/null; then groupdel xdpsec; fi
files >"$T/before"
dpkg -i "$DEB"
echo "user: $(getent passwd xdpsec)"
echo "/var/lib/xdpsec: $(stat -c '%U %G %a' /var/lib/xdpsec)"
/usr/sbin/xdpsec version
/usr/sbin/xdpsec selftest -packets 200 | tail -1
man -w xdpsec xdpsec.yaml
dpkg --purge xdpsec
files >"$T/after"
if diff "$T/before" "$T/after"; then echo "after purge: nothing left"; fi
if ! getent passwd xdpsec && ! getent group xdpsec; then echo "after purge: no user, no group"; fi
`
