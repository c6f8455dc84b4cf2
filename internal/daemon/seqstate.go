package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
)

// seqKeys fingerprints the outbound static SAs' keys (called while the
// configuration still holds them): the state store files marks by them.
func seqKeys(cfg *config.Config, sas []*sad.SA) []seqstate.Key {
	var keys []seqstate.Key
	for i, sa := range sas {
		if i >= len(cfg.SAs) || sa.Dir != sad.Outbound {
			continue
		}
		sc := &cfg.SAs[i]
		if cfg.Cluster.GroupOfSA(sc.Name) != "" {
			continue // its marks are the cluster's (clusterSeqKeys)
		}
		keys = append(keys, seqstate.Key{SA: sa, Fingerprint: seqstate.Fingerprint(sc.Key, sc.IntegKey)})
	}
	return keys
}

// restoreSeq resumes the outbound static SAs past every sequence number
// an earlier run may have used, and reserves their first block durably,
// before any worker runs. Whenever that cannot be guaranteed it refuses,
// saying why and what to do: a static AEAD key sealing a number twice
// gives its nonce away.
func (d *Daemon) restoreSeq() error {
	if len(d.seqKeys) == 0 {
		return nil
	}
	for _, k := range d.seqKeys {
		if k.SA.Crypto.Suite.IsAEAD() {
			d.log.Warn("manually keyed AEAD SA: RFC 4106 and RFC 8221 advise against static keys with AES-GCM and ChaCha20-Poly1305, "+
				"whose nonce is the sequence number; its uniqueness across restarts rests on state_dir. Prefer IKEv2 (connections:)",
				"sa", k.SA.Name, "spi", fmt.Sprintf("0x%08x", k.SA.SPI), "suite", k.SA.Crypto.Suite.String(), "state_dir", d.cfg.StateDir)
		}
	}
	st, err := seqstate.Open(d.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("refusing to start: %w\n"+
			"  Static SAs need durable sequence-number state: without it a restart could send a sequence number again,\n"+
			"  which with an AEAD suite reuses a nonce. Make %s writable, or set state_dir to a writable directory on\n"+
			"  persistent storage (moving its *.seq files along).", err, d.cfg.StateDir)
	}
	if st.Volatile() {
		d.log.Warn("state_dir is on tmpfs: a reboot loses the sequence-number marks, and the static keys are refused until replaced",
			"state_dir", st.Dir())
	}
	r, err := seqstate.Resume(st, d.seqKeys, time.Now())
	if err != nil {
		st.Close()
		return fmt.Errorf("refusing to start: %w%s", err, seqAdvice(err, d.cfg.File, st.Dir()))
	}
	d.seqStore, d.seqRes = st, r
	d.log.Info("outbound sequence numbers resumed above the durable marks", "sas", len(d.seqKeys), "state_dir", st.Dir())
	return nil
}

// seqAdvice says what an operator can do about a Resume error.
func seqAdvice(err error, file, dir string) string {
	var b strings.Builder
	if errors.Is(err, seqstate.ErrUnknownKey) {
		fmt.Fprintf(&b, "\n  %s holds no sequence-number mark for these keys, so this gateway cannot know which numbers were already\n"+
			"  sent under them. If a key may have been used before (state lost, a reboot with state on tmpfs, a copied\n"+
			"  configuration), generate a new key for that SA and for the peer's matching inbound SA. If the keys are new,\n"+
			"  declare them: `xdpsec newkeys -c %s`, then start again.", dir, file)
	}
	if errors.Is(err, seqstate.ErrInUse) {
		b.WriteString("\n  Another xdpsec is sending with the same key right now: stop it, or give each gateway its own keys.")
	}
	if errors.Is(err, seqstate.ErrUnwritable) {
		fmt.Fprintf(&b, "\n  Make %s writable (state_dir).", dir)
	}
	if b.Len() == 0 {
		b.WriteString("\n  A damaged or unreadable mark is a lost mark: replace the key (and the peer's matching inbound key).")
	}
	return b.String()
}

// reserveSeq keeps the outbound static SAs' durable marks ahead of their
// traffic. A failed save is logged when it starts and when it ends: in
// between the SAs run into their limits and drop (seq_unreserved).
func (d *Daemon) reserveSeq(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(seqstate.RefreshInterval)
	defer t.Stop()
	var f saveFailures
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.note(d.log, d.seqRes.Refresh(now),
				"cannot save sequence-number marks: outbound static SAs stop at their last durable mark (seq_unreserved drops) until this is fixed",
				"sequence-number marks saved again")
		}
	}
}

// saveFailures logs a run of failed mark saves once when it starts and
// once when it ends (a Refresh runs every 10 ms).
type saveFailures struct{ failing bool }

func (f *saveFailures) note(log *slog.Logger, err error, failed, again string) {
	switch {
	case err != nil && !f.failing:
		log.Error(failed, "err", err)
	case err == nil && f.failing:
		log.Info(again)
	}
	f.failing = err != nil
}

// DeclareNewKeys records the configuration's outbound static keys that
// the state directory has no mark for as never used; it returns the SA
// names it declared and those it already knew. Only the operator who made
// the keys can know they are new: `xdpsec newkeys`.
func DeclareNewKeys(cfg *config.Config) (declared, known []string, err error) {
	var keys []seqstate.Key
	for i := range cfg.SAs {
		sc := &cfg.SAs[i]
		if sc.Dir != sad.Outbound {
			continue
		}
		keys = append(keys, seqstate.Key{SA: &sad.SA{Name: sc.Name, SPI: sc.SPI},
			Fingerprint: seqstate.Fingerprint(sc.Key, sc.IntegKey)})
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	st, err := seqstate.Open(cfg.StateDir)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	for _, k := range keys {
		ok, err := st.Declare(k.Fingerprint)
		if err != nil {
			return declared, known, fmt.Errorf("sa %s: %w", k.SA.Name, err)
		}
		name := fmt.Sprintf("%s (spi 0x%08x, key %s)", k.SA.Name, k.SA.SPI, k.Fingerprint)
		if ok {
			declared = append(declared, name)
		} else {
			known = append(known, name)
		}
	}
	return declared, known, nil
}
