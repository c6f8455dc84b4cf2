package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/sad"
)

// seqReserve is how far ahead of the last sent sequence number the saved
// mark runs. A daemon that dies resumes at the mark, past every number it
// could have sent, so the peer's anti-replay window (RFC 4303 §3.4.3)
// accepts its packets at once. The mark is raised when the SA gets within
// half a reserve of it, checked every second: that covers 8 M packets a
// second per SA. Each restart skips at most one reserve, which a 32-bit
// sequence space affords 256 times and a 64-bit one (ESN) for ever.
const seqReserve = 1 << 24

// seqState persists the reservation marks of the outbound SAs, one line
// per SA: name, SPI, mark. Only numbers are written, never keys.
type seqState struct {
	path  string
	marks map[string]uint64 // by "name spi"
}

func seqKey(sa *sad.SA) string { return fmt.Sprintf("%s %08x", sa.Name, sa.SPI) }

// loadSeqState reads the marks; a missing or unreadable file means a
// fresh start.
func loadSeqState(path string) (*seqState, error) {
	s := &seqState{path: path, marks: map[string]uint64{}}
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return s, nil
		}
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue
		}
		v, err := strconv.ParseUint(fs[2], 10, 64)
		if err != nil {
			continue
		}
		s.marks[fs[0]+" "+fs[1]] = v
	}
	return s, sc.Err()
}

// resume moves each outbound SA past the mark its previous run saved.
func (s *seqState) resume(sas []*sad.SA) (resumed int) {
	for _, sa := range sas {
		if sa.Dir != sad.Outbound {
			continue
		}
		if m, ok := s.marks[seqKey(sa)]; ok && m > sa.Seq() {
			sa.SetSeq(m)
			resumed++
		}
	}
	return resumed
}

// reserve raises the marks that the SAs are getting close to and saves
// them before any worker can pass them; it reports whether it wrote.
func (s *seqState) reserve(sas []*sad.SA, force bool) (bool, error) {
	changed := force
	for _, sa := range sas {
		if sa.Dir != sad.Outbound {
			continue
		}
		k := seqKey(sa)
		seq := sa.Seq()
		if m, ok := s.marks[k]; force || !ok || seq+seqReserve/2 > m {
			s.marks[k] = seq + seqReserve
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	return true, s.save()
}

func (s *seqState) save() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("sequence state: %w", err)
	}
	var b strings.Builder
	b.WriteString("# xdpsec outbound sequence-number reservations: name spi mark\n")
	for k, m := range s.marks {
		fmt.Fprintf(&b, "%s %d\n", k, m)
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sequence state: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("sequence state: %w", err)
	}
	// The mark must be on disk before the sequence numbers behind it
	// go out.
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sequence state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sequence state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("sequence state: %w", err)
	}
	return nil
}
