// Package seqstate keeps the outbound sequence numbers of manually keyed
// (static) SAs unique across restarts, crashes and reboots.
//
// With an AEAD suite (AES-GCM, RFC 4106; ChaCha20-Poly1305, RFC 7634) the
// ESP sequence number is the nonce: two packets sealed under one key with
// one sequence number leak the XOR of their plaintexts and, for GCM, the
// authentication key. An IKE SA gets fresh keys on every start; a static
// SA's key is the same on every start, so each start must continue past
// every number any earlier run can have used.
//
// The Store keeps, per key, a high-water mark: a number no run has gone
// past. The Reserver raises it ahead of the traffic in blocks sized to the
// rate, writes and fsyncs it (and the directory) and only then lets the
// SA use the numbers up to it (sad.SA.SetSeqLimit). A worker that reaches
// the mark before the next block is durable drops (seq_unreserved) rather
// than seal above it. So at every instant the mark on disk is at least
// every number used, and a restart, however abrupt, resumes above it.
//
// Marks are filed by a fingerprint of the key (Fingerprint): renaming an
// SA or changing its SPI keeps them; the key itself is never written. A
// key the store has no mark for is refused (ErrUnknownKey) unless the
// operator declares it new (Declare, `xdpsec newkeys`): the store cannot
// tell a new key from an old one whose state was lost.
package seqstate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fingerprintLabel keys the fingerprint's HMAC: it separates this use of
// the key from every other, so a fingerprint is no hash of the key that
// some other system publishes too.
const fingerprintLabel = "xdpsec outbound sequence state v1"

// Fingerprint names a key in the store: HMAC-SHA-256 over the key
// material, 128 bits in hex. It is one-way; the key cannot be recovered
// from it. The suite is left out on purpose: the same key bytes under
// another tag length (aes128gcm16 and aes128gcm8) give the same nonces,
// so they must share one mark.
func Fingerprint(key, integKey []byte) string {
	m := hmac.New(sha256.New, []byte(fingerprintLabel))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	m.Write(n[:]) // keeps key ‖ integ key apart from other splits
	m.Write(key)
	m.Write(integKey)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ErrUnknownKey: the store holds no mark for a key, so the store cannot
// rule out that it was used before.
var ErrUnknownKey = errors.New("no sequence-number state for this key")

// ErrUnwritable: the store's directory cannot be written, so no mark can
// be made durable.
var ErrUnwritable = errors.New("sequence-number state directory not writable")

// ErrInUse: another running process holds the key.
var ErrInUse = errors.New("key in use by another running xdpsec")

// Store is a directory of marks, one file per key: FINGERPRINT.seq.
type Store struct {
	dir      string
	d        *os.File // the directory, fsynced after each rename
	locks    map[string]*os.File
	volatile bool
}

const fileMagic = "xdpsec-seq-v1"

// Open opens (creating it, 0700) the state directory and proves it can be
// written: a probe file is written, fsynced and removed.
func Open(dir string) (*Store, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("%w: %q is not an absolute path", ErrUnwritable, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnwritable, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnwritable, err)
	}
	s := &Store{dir: dir, d: d, locks: map[string]*os.File{}}
	probe := filepath.Join(dir, fmt.Sprintf(".probe-%d", os.Getpid()))
	if err := writeSync(probe, []byte("probe\n")); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnwritable, err)
	}
	os.Remove(probe)
	if err := d.Sync(); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %s: fsync: %v", ErrUnwritable, dir, err)
	}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC) {
		s.volatile = true
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Volatile reports whether the directory is on tmpfs or ramfs: a reboot
// loses it, and the keys it held are refused until replaced.
func (s *Store) Volatile() bool { return s.volatile }

func (s *Store) path(fp string) string { return filepath.Join(s.dir, fp+".seq") }

// Load reads the mark of the key fp; found is false when the store has
// none. A file that is there but unreadable or damaged is an error: the
// mark it held is unknown.
func (s *Store) Load(fp string) (mark uint64, found bool, err error) {
	b, err := os.ReadFile(s.path(fp))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != fileMagic || f[1] != fp {
		return 0, false, fmt.Errorf("%s: damaged", s.path(fp))
	}
	mark, err = strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: damaged: %v", s.path(fp), err)
	}
	return mark, true, nil
}

// Save makes mark the key's durable mark: written to a temporary file,
// fsynced, renamed over the old one, and the directory fsynced, so after
// Save returns nil a crash or power loss finds mark (or the old file, if
// Save failed; never a torn one).
func (s *Store) Save(fp string, mark uint64) error {
	tmp := filepath.Join(s.dir, "."+fp+".tmp")
	if err := writeSync(tmp, []byte(fmt.Sprintf("%s %s %d\n", fileMagic, fp, mark))); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path(fp)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.d.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", s.dir, err)
	}
	return nil
}

// Declare records a key as never used (mark 0) unless the store knows it
// already; it reports whether it did. Only an operator who generated the
// key may say so.
func (s *Store) Declare(fp string) (bool, error) {
	if _, found, err := s.Load(fp); err != nil || found {
		return false, err
	}
	return true, s.Save(fp, 0)
}

// Lock takes the key for this process until Close: a second daemon
// sending with the same key at the same time would reuse its numbers.
func (s *Store) Lock(fp string) error {
	if _, ok := s.locks[fp]; ok {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fp+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnwritable, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrInUse
		}
		return fmt.Errorf("%s: flock: %w", f.Name(), err)
	}
	s.locks[fp] = f
	return nil
}

// Close releases the keys' locks and the directory.
func (s *Store) Close() error {
	for fp, f := range s.locks {
		f.Close()
		delete(s.locks, fp)
	}
	return s.d.Close()
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: fsync: %w", path, err)
	}
	return f.Close()
}
