package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpPages: every listed subcommand prints, for --help, its usage,
// its flags and an example that runs that very subcommand, and genman's
// xdpsec(8) carries the same synopsis, flags and example.
func TestHelpPages(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join("..", "..")
	if code := runGenman([]string{"-o", dir, "-example", filepath.Join(root, "scripts", "package", "xdpsec.yaml"),
		"-reference", filepath.Join(root, "scripts", "lab", "gw-a.yaml")}); code != 0 {
		t.Fatalf("genman: exit %d", code)
	}
	man8, err := os.ReadFile(filepath.Join(dir, "xdpsec.8"))
	if err != nil {
		t.Fatal(err)
	}
	saved := helpOut
	defer func() { helpOut = saved }()
	for _, name := range commandNames() {
		p, ok := pages[name]
		if !ok || p.synopsis == "" || p.text == "" || p.example == "" {
			t.Errorf("%s: no page (synopsis, text, example)", name)
			continue
		}
		var buf bytes.Buffer
		helpOut = &buf
		commands[name].run([]string{"--help"})
		out := buf.String()
		for _, want := range []string{"usage: xdpsec " + name, "\nexample:\n  xdpsec " + name} {
			if !strings.Contains(out, want) {
				t.Errorf("xdpsec %s --help lacks %q:\n%s", name, want, out)
			}
		}
		fs := flagSets[name]
		if fs == nil {
			t.Errorf("%s: its flags are not built with newFlagSet", name)
			continue
		}
		if !strings.Contains(string(man8), `.SS "xdpsec `+roff(p.synopsis)+`"`) {
			t.Errorf("xdpsec.8 lacks %s's synopsis", name)
		}
		for _, l := range strings.Split(p.example, "\n") {
			if !strings.Contains(string(man8), roff(l)) {
				t.Errorf("xdpsec.8 lacks %s's example %q", name, l)
			}
		}
	}
	man5, err := os.ReadFile(filepath.Join(dir, "xdpsec.yaml.5"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".SH CONNECTIONS", ".SH REFERENCE", "control_admin_group", "half_open_per_prefix"} {
		if !strings.Contains(string(man5), want) {
			t.Errorf("xdpsec.yaml.5 lacks %q", want)
		}
	}
}
