package swanctl

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Limits that keep a hostile or mistaken file from costing much.
const (
	maxFileSize = 4 << 20 // one file
	maxFiles    = 64      // files read through include, the first one counted
	maxDepth    = 32      // nested sections, includes and references
	maxNodes    = 100_000 // sections and settings, references expanded
	maxValue    = 64 << 10
)

// Error is a syntax or include error: where it is and what is wrong.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Setting is one key = value, with where its (last) value was written.
type Setting struct {
	Key, Value string
	File       string
	Line       int
}

// Section is a named section: its settings and subsections in the order
// they first appear. A repeated key replaces the value; a repeated
// section extends the first (strongswan.conf(5)).
type Section struct {
	Name     string
	File     string
	Line     int
	Refs     []string // name : ref1, ref2 { ... }: absolute names of sections inherited
	Settings []*Setting
	Sections []*Section
}

// Get returns the setting key, or nil.
func (s *Section) Get(key string) *Setting {
	for _, kv := range s.Settings {
		if kv.Key == key {
			return kv
		}
	}
	return nil
}

// Sub returns the subsection name, or nil.
func (s *Section) Sub(name string) *Section {
	for _, c := range s.Sections {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Parse reads swanctl.conf text (name is used in errors and as the base
// of relative includes), follows its includes and resolves its section
// references. The result is the root section.
func Parse(name string, b []byte) (*Section, error) {
	return parse(name, b, readLimited)
}

// parse is Parse with the reader of included files given (tests and the
// fuzz target read none).
func parse(name string, b []byte, read func(string) ([]byte, error)) (*Section, error) {
	p := &parser{read: read}
	root := &Section{File: name, Line: 1}
	if err := p.file(name, b, root, 0); err != nil {
		return nil, err
	}
	if err := p.resolve(root); err != nil {
		return nil, err
	}
	return root, nil
}

// ParseFile reads the file path with Parse.
func ParseFile(path string) (*Section, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

type parser struct {
	read  func(string) ([]byte, error)
	files int
	nodes int
}

func (p *parser) node(l *lexer) error {
	p.nodes++
	if p.nodes > maxNodes {
		return l.errf("more than %d sections and settings", maxNodes)
	}
	return nil
}

// file parses one file's statements into sec.
func (p *parser) file(name string, b []byte, sec *Section, depth int) error {
	p.files++
	if p.files > maxFiles {
		return &Error{File: name, Line: 1, Msg: fmt.Sprintf("more than %d files included", maxFiles)}
	}
	l := &lexer{file: name, src: b, line: 1}
	if err := p.statements(l, sec, depth, true); err != nil {
		return err
	}
	return nil
}

// statements parses until '}' (consumed) or, at the top of a file, the
// end of it.
func (p *parser) statements(l *lexer, sec *Section, depth int, top bool) error {
	if depth > maxDepth {
		return l.errf("sections nested deeper than %d", maxDepth)
	}
	for {
		t, err := l.next()
		if err != nil {
			return err
		}
		switch t.kind {
		case tEOF:
			if !top {
				return l.errf("missing '}' to close section %q", sec.Name)
			}
			return nil
		case tNewline:
			continue
		case '}':
			if top {
				return l.errf("unexpected '}'")
			}
			return nil
		case tName:
		default:
			return l.errf("unexpected %s", t)
		}
		line := t.line
		if t.text == "include" && l.includeFollows() {
			pattern, err := l.includePattern()
			if err != nil {
				return err
			}
			if err := p.include(l, pattern, line, sec, depth); err != nil {
				return err
			}
			continue
		}
		name := t.text
		t2, err := l.next()
		if err != nil {
			return err
		}
		if t2.kind == tNewline { // NAME NEWLINE '{' is a section too
			t2, err = l.next()
			if err != nil {
				return err
			}
			if t2.kind != '{' {
				return l.errf("%q: expected '=' or '{'", name)
			}
		}
		switch t2.kind {
		case '=':
			v, err := l.value()
			if err != nil {
				return err
			}
			if err := p.node(l); err != nil {
				return err
			}
			if kv := sec.Get(name); kv != nil {
				kv.Value, kv.File, kv.Line = v, l.file, line
			} else {
				sec.Settings = append(sec.Settings, &Setting{Key: name, Value: v, File: l.file, Line: line})
			}
		case '{', ':':
			var refs []string
			if t2.kind == ':' {
				if refs, err = l.references(); err != nil {
					return err
				}
			}
			if err := p.node(l); err != nil {
				return err
			}
			sub := sec.Sub(name)
			if sub == nil {
				sub = &Section{Name: name, File: l.file, Line: line}
				sec.Sections = append(sec.Sections, sub)
			}
			sub.Refs = append(sub.Refs, refs...)
			if err := p.statements(l, sub, depth+1, false); err != nil {
				return err
			}
		default:
			return l.errf("%q: expected '=' or '{', found %s", name, t2)
		}
	}
}

// include parses the files pattern names (relative to the including
// file's directory, shell wildcards allowed) into sec.
func (p *parser) include(l *lexer, pattern string, line int, sec *Section, depth int) error {
	if pattern == "" {
		return &Error{File: l.file, Line: line, Msg: "include: no file name"}
	}
	if depth > maxDepth {
		return &Error{File: l.file, Line: line, Msg: fmt.Sprintf("includes nested deeper than %d", maxDepth)}
	}
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(l.file), pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return &Error{File: l.file, Line: line, Msg: fmt.Sprintf("include %s: %v", pattern, err)}
	}
	if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
		return &Error{File: l.file, Line: line, Msg: fmt.Sprintf("include %s: no such file", pattern)}
	}
	sort.Strings(matches)
	for _, m := range matches {
		b, err := p.read(m)
		if err != nil {
			return &Error{File: l.file, Line: line, Msg: fmt.Sprintf("include: %v", err)}
		}
		if err := p.file(m, b, sec, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// resolve copies into every section that references others (name : a, b)
// what it does not set itself, the referenced sections' own references
// first, as strongSwan evaluates them.
func (p *parser) resolve(root *Section) error {
	done := map[*Section]bool{}
	var walk func(s *Section, depth int) error
	var inherit func(s *Section, stack map[*Section]bool, depth int) error
	inherit = func(s *Section, stack map[*Section]bool, depth int) error {
		if len(s.Refs) == 0 || done[s] {
			return nil
		}
		if depth > maxDepth {
			return &Error{File: s.File, Line: s.Line, Msg: fmt.Sprintf("section %q: references nested deeper than %d", s.Name, maxDepth)}
		}
		if stack[s] {
			return &Error{File: s.File, Line: s.Line, Msg: fmt.Sprintf("section %q: references form a cycle", s.Name)}
		}
		stack[s] = true
		defer delete(stack, s)
		for _, ref := range s.Refs {
			r := lookup(root, ref)
			if r == nil {
				return &Error{File: s.File, Line: s.Line, Msg: fmt.Sprintf("section %q: referenced section %q does not exist", s.Name, ref)}
			}
			if err := inherit(r, stack, depth+1); err != nil {
				return err
			}
			if err := p.merge(s, r, 0); err != nil {
				return err
			}
		}
		done[s] = true
		return nil
	}
	walk = func(s *Section, depth int) error {
		if err := inherit(s, map[*Section]bool{}, 0); err != nil {
			return err
		}
		for _, c := range s.Sections {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}

// merge adds to dst what src has and dst does not, recursively.
func (p *parser) merge(dst, src *Section, depth int) error {
	if depth > maxDepth {
		return &Error{File: dst.File, Line: dst.Line, Msg: "references nested too deep"}
	}
	for _, kv := range src.Settings {
		if dst.Get(kv.Key) == nil {
			if p.nodes++; p.nodes > maxNodes {
				return &Error{File: dst.File, Line: dst.Line, Msg: fmt.Sprintf("references expand to more than %d sections and settings", maxNodes)}
			}
			c := *kv
			dst.Settings = append(dst.Settings, &c)
		}
	}
	for _, sc := range src.Sections {
		d := dst.Sub(sc.Name)
		if d == nil {
			if p.nodes++; p.nodes > maxNodes {
				return &Error{File: dst.File, Line: dst.Line, Msg: fmt.Sprintf("references expand to more than %d sections and settings", maxNodes)}
			}
			d = &Section{Name: sc.Name, File: sc.File, Line: sc.Line, Refs: sc.Refs}
			dst.Sections = append(dst.Sections, d)
		}
		if err := p.merge(d, sc, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds a section by its absolute dotted name.
func lookup(root *Section, abs string) *Section {
	s := root
	for part := range strings.SplitSeq(abs, ".") {
		if s = s.Sub(part); s == nil {
			return nil
		}
	}
	return s
}

// The lexer follows strongSwan's settings lexer: names are runs of
// characters other than # { } = " , : and white space; a value runs to
// the end of the line, a '#' or a '}', its white-space-separated parts
// (bare or quoted) joined by single spaces.

type tokKind int

const (
	tEOF tokKind = iota + 256
	tNewline
	tName
)

type token struct {
	kind tokKind
	text string
	line int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tNewline:
		return "end of line"
	case tName:
		return fmt.Sprintf("%q", t.text)
	}
	return fmt.Sprintf("'%c'", rune(t.kind))
}

type lexer struct {
	file string
	src  []byte
	pos  int
	line int
}

func (l *lexer) errf(format string, args ...any) error {
	return &Error{File: l.file, Line: l.line, Msg: fmt.Sprintf(format, args...)}
}

func isNameByte(c byte) bool {
	switch c {
	case '#', '{', '}', '=', '"', ',', ':', ' ', '\t', '\r', '\n':
		return false
	}
	return true
}

// skipComment skips a '#' comment up to (not including) the line end.
func (l *lexer) skipComment() {
	for l.pos < len(l.src) && l.src[l.pos] != '\n' {
		l.pos++
	}
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '#':
			l.skipComment()
		case c == '\n':
			l.pos++
			l.line++
			return token{kind: tNewline, line: l.line - 1}, nil
		case c == '{' || c == '}' || c == '=' || c == ':' || c == ',':
			l.pos++
			return token{kind: tokKind(c), line: l.line}, nil
		case c == '"':
			return token{}, l.errf("unexpected string (quotes belong to values)")
		default:
			start := l.pos
			for l.pos < len(l.src) && isNameByte(l.src[l.pos]) {
				l.pos++
			}
			return token{kind: tName, text: string(l.src[start:l.pos]), line: l.line}, nil
		}
	}
	return token{kind: tEOF, line: l.line}, nil
}

// includeFollows reports whether "include" is the include statement (white
// space, then not '='), not a key or section of that name.
func (l *lexer) includeFollows() bool {
	i := l.pos
	if i >= len(l.src) || (l.src[i] != ' ' && l.src[i] != '\t') {
		return false
	}
	for i < len(l.src) && (l.src[i] == ' ' || l.src[i] == '\t') {
		i++
	}
	return i < len(l.src) && l.src[i] != '=' && l.src[i] != '{' && l.src[i] != '\n'
}

// includePattern reads the file pattern after include: up to white space,
// '#', '}' or the line end; quoted, or with \ escaping " # } and space.
func (l *lexer) includePattern() (string, error) {
	for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t') {
		l.pos++
	}
	if l.pos < len(l.src) && l.src[l.pos] == '"' {
		return l.quoted()
	}
	var sb strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case ' ', '\t', '\r', '\n', '#', '}':
			return sb.String(), nil
		case '\\':
			if l.pos+1 < len(l.src) && strings.IndexByte("\"#} ", l.src[l.pos+1]) >= 0 {
				sb.WriteByte(l.src[l.pos+1])
				l.pos += 2
				continue
			}
		}
		sb.WriteByte(c)
		l.pos++
	}
	return sb.String(), nil
}

// value reads what follows '='.
func (l *lexer) value() (string, error) {
	var parts []string
	size := 0
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case ' ', '\t', '\r':
			l.pos++
			continue
		case '\n', '#', '}':
			return strings.Join(parts, " "), nil
		case '"':
			s, err := l.quoted()
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
			size += len(s)
		default:
			start := l.pos
			for l.pos < len(l.src) && strings.IndexByte("#}\"\r\n\t ", l.src[l.pos]) < 0 {
				l.pos++
			}
			parts = append(parts, string(l.src[start:l.pos]))
			size += l.pos - start
		}
		if size > maxValue {
			return "", l.errf("value longer than %d bytes", maxValue)
		}
	}
	return strings.Join(parts, " "), nil
}

// quoted reads a "string" at l.pos: \n \r \t and \x (x itself) are
// escapes, a backslash before a line end joins the lines.
func (l *lexer) quoted() (string, error) {
	start := l.line
	l.pos++ // the opening quote
	var sb strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case '"':
			l.pos++
			return sb.String(), nil
		case '\r':
			l.pos++
			continue
		case '\n':
			l.line++
		case '\\':
			if l.pos+1 >= len(l.src) {
				return "", &Error{File: l.file, Line: start, Msg: "unterminated string"}
			}
			e := l.src[l.pos+1]
			l.pos += 2
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case '\n':
				l.line++
			case '\r':
				if l.pos < len(l.src) && l.src[l.pos] == '\n' {
					l.pos++
					l.line++
				}
			default:
				sb.WriteByte(e)
			}
			continue
		}
		if sb.Len() >= maxValue {
			return "", l.errf("string longer than %d bytes", maxValue)
		}
		sb.WriteByte(c)
		l.pos++
	}
	return "", &Error{File: l.file, Line: start, Msg: "unterminated string"}
}

// references reads "a, b.c {" after "name :", the '{' included.
func (l *lexer) references() ([]string, error) {
	var refs []string
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		if t.kind != tName {
			return nil, l.errf("expected a section name after ':', found %s", t)
		}
		refs = append(refs, t.text)
		if len(refs) > maxDepth {
			return nil, l.errf("more than %d references", maxDepth)
		}
		t, err = l.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case ',':
			continue
		case '{':
			return refs, nil
		default:
			return nil, l.errf("expected ',' or '{' after a reference, found %s", t)
		}
	}
}
