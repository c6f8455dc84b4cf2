package swanctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flat renders a parsed tree as "a.b.key=value@line" lines, in order.
func flat(s *Section, prefix string, out *[]string) {
	for _, kv := range s.Settings {
		*out = append(*out, prefix+kv.Key+"="+kv.Value)
	}
	for _, c := range s.Sections {
		flat(c, prefix+c.Name+".", out)
	}
}

func noFiles(p string) ([]byte, error) { return nil, os.ErrNotExist }

func TestParse(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"nested", "a {\n b = c\n sub {\n  x = 1\n }\n}\n", []string{"a.b=c", "a.sub.x=1"}},
		{"comments", "# top\na { # after brace\n b = c # trailing\n # inside\n}\n", []string{"a.b=c"}},
		{"quoted", `a = "x y # not a comment }"` + "\n" + `b = "q\"e\\n\tt"` + "\n", []string{"a=x y # not a comment }", "b=q\"e\\n\tt"}},
		{"escapes", "a = \"l1\\nl2\\tt\\\\\"\n", []string{"a=l1\nl2\tt\\"}},
		{"parts joined by one space", "a = x   y\t\"z  w\"\n", []string{"a=x y z  w"}},
		{"value ends at brace (one-line sections)", "a { b = c }\nd { e { f = g } }\n", []string{"a.b=c", "d.e.f=g"}},
		{"name newline brace", "a\n{\n b = c\n}\n", []string{"a.b=c"}},
		{"repeat replaces, section extends", "a { b = 1\n}\na { b = 2\nc = 3\n}\n", []string{"a.b=2", "a.c=3"}},
		{"empty value", "a =\nb = \n", []string{"a=", "b="}},
		{"commas and equals in values", "id = C=CH, O=x, CN=gw\nts = 10.0.0.0/8,10.1.0.0/16[tcp/443]\n", []string{"id=C=CH, O=x, CN=gw", "ts=10.0.0.0/8,10.1.0.0/16[tcp/443]"}},
		{"no final newline", "a = b", []string{"a=b"}},
		{"crlf", "a {\r\n b = c\r\n}\r\n", []string{"a.b=c"}},
		{"include as a key", "include = x\n", []string{"include=x"}},
		{"references", "defs { x = 1\n y = 2\n sub { z = 3 } }\nconns {\n c : defs {\n y = 9\n }\n}\n",
			[]string{"defs.x=1", "defs.y=2", "defs.sub.z=3", "conns.c.y=9", "conns.c.x=1", "conns.c.sub.z=3"}},
		{"chained references", "a { x = 1 }\nb : a { y = 2 }\nc : b, a { z = 3 }\n",
			[]string{"a.x=1", "b.y=2", "b.x=1", "c.z=3", "c.y=2", "c.x=1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, err := parse("t.conf", []byte(tc.in), noFiles)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			flat(root, "", &got)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"unterminated string", "a {\n b = \"abc\n\n", 2, "unterminated string"},
		{"missing brace", "a {\n b = c\n", 3, "missing '}'"},
		{"stray brace", "a = b\n}\n", 2, "unexpected '}'"},
		{"no equals", "a {\n b c\n}\n", 2, `"b": expected '=' or '{'`},
		{"quoted name", "\"a\" = b\n", 1, "unexpected string"},
		{"missing reference", "a : nowhere { }\n", 1, `"nowhere" does not exist`},
		{"reference cycle", "a : b { }\nb : a { }\n", 1, "cycle"},
		{"bad reference list", "a : b c { }\n", 1, "expected ',' or '{'"},
		{"include missing", "\n\ninclude nothere.conf\n", 3, "no such file"},
		{"too deep", strings.Repeat("a {\n", maxDepth+2), maxDepth + 1, "nested deeper"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse("/x/swanctl.conf", []byte(tc.in), noFiles)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want a *Error", err)
			}
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) || !strings.HasPrefix(err.Error(), "/x/swanctl.conf:") {
				t.Errorf("%v, want line %d with %q", err, tc.line, tc.msg)
			}
		})
	}
}

// TestInclude: included files (relative to the including one, with
// wildcards, in name order) add to the section the include is in.
func TestInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("conf.d/b.conf", "site { y = 2 }\n")
	write("conf.d/a.conf", "site { x = 1 }\n")
	write("secrets.conf", "ike-1 { secret = s }\n")
	write("bad.conf", "oops {\n")
	write("swanctl.conf", "connections {\n include conf.d/*.conf\n}\nsecrets {\n include \"secrets.conf\"\n}\ninclude none/*.conf\n")
	root, err := ParseFile(filepath.Join(dir, "swanctl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	flat(root, "", &got)
	want := "connections.site.x=1|connections.site.y=2|secrets.ike-1.secret=s"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// An error in an included file names that file and its line.
	write("swanctl.conf", "a = b\ninclude bad.conf\n")
	_, err = ParseFile(filepath.Join(dir, "swanctl.conf"))
	if err == nil || !strings.Contains(err.Error(), "bad.conf:2:") {
		t.Errorf("error %v, want bad.conf:2", err)
	}
	// A file that includes itself stops at the file limit.
	write("loop.conf", "include loop.conf\n")
	if _, err = ParseFile(filepath.Join(dir, "loop.conf")); err == nil {
		t.Error("a self-including file parsed")
	}
}

// TestReferenceBlowup: references that double at every level stop at the
// node limit instead of allocating without bound.
func TestReferenceBlowup(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0 { a = 1\n b = 2 }\n")
	for i := 1; i < 30; i++ {
		b.WriteString("l" + itoa(i) + " { x : l" + itoa(i-1) + " { }\n y : l" + itoa(i-1) + " { } }\n")
	}
	if _, err := parse("t.conf", []byte(b.String()), noFiles); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("error %v, want the node limit", err)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// FuzzParse: malformed input gives an error, never a panic, and what
// parses converts without one.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"connections {\n a {\n local_addrs = 192.0.2.1\n children { c { local_ts = 10.0.0.0/8 } } } }\nsecrets { ike { secret = 0x0011 } }\n",
		"a : b { }\nb { x = \"y\\\"z\" }\n",
		"include x.conf\n",
		"a { b = c }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := parse("/nonexistent/swanctl.conf", b, noFiles)
		if err != nil {
			return
		}
		if _, err := Convert(root, Options{Dir: "/nonexistent", PSKFiles: true}); err != nil {
			t.Fatal(err)
		}
	})
}
