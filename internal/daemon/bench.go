package daemon

import (
	"log/slog"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
)

// benchNullCipher gives a static SA the bench-only null transform when
// the configuration asks for it (bench_null_cipher, the lab's ceiling in
// scripts/bench-lab.sh) and `xdpsec run --bench` allowed it; the
// configuration's check is repeated here, where the transform is
// swapped, so that no other way into the daemon can skip it.
func benchNullCipher(cfg *config.Config, sa *sad.SA, log *slog.Logger) error {
	if !cfg.BenchNullCipher {
		return nil
	}
	if err := cfg.CheckBench(); err != nil {
		return err
	}
	if log != nil {
		log.Warn("!!! bench_null_cipher: this SA neither encrypts nor authenticates (bench only) !!!", "sa", sa.Name)
	}
	return sa.BenchNullCipher()
}

// benchReload carries `run --bench` over to a reloaded configuration
// (config.Compare refuses to switch bench_null_cipher itself: the SAs a
// reload keeps would go on with the old transform beside new ones).
func benchReload(cur, next *config.Config) error {
	next.BenchAllowed = cur.BenchAllowed
	return next.CheckBench()
}
