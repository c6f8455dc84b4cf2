# xdpsec — see README.md. `make demo` and `make test` are the two entry
# points; both install what they need first.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Packages whose tests exercise concurrency run again under the race
# detector.
RACE_PKGS := ./sad/... ./fastpath ./fastpath/xsk ./ike ./ike/transport ./internal/cluster

.PHONY: all build deps check staticcheck check-bpf test-unit test vet demo bench bench-deps fuzz generate clean man deb

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/xdpsec ./cmd/xdpsec

deps:
	./scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# What a change must pass, without root (clang for check-bpf): gofmt and
# go vet, staticcheck, the committed BPF object against its source, and the
# unit tests run without root.
check: vet staticcheck check-bpf test-unit

# staticcheck (honnef.co/go/tools), pinned in go.mod's tool block; the
# checks turned off, each with its reason, are in staticcheck.conf. The
# packages with purego files (AES-GCM's fallback) again with that tag.
PUREGO_PKGS = $(addprefix ./,$(sort $(dir $(shell git grep -l '^//go:build.*purego' -- '*.go'))))
staticcheck:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags purego $(PUREGO_PKGS)

# bpf/xdpsec.c regenerated (go generate ./bpf) and compared byte for byte
# with the committed bpf/xdpsec_bpfel.{o,go}: a source changed without
# its object fails here (needs clang and llvm-strip: make deps).
check-bpf:
	GO='$(GO)' ./scripts/check-bpf.sh

# The unit tests without root. As root they run in a user namespace whose
# only user is nobody (uid 65534, mapped to the caller: the Go caches stay
# writable) with no capabilities, so os.Geteuid() is not 0 and every test
# that needs root skips, saying why; as another user they run as they are.
NOROOT ?= $(if $(filter 0,$(shell id -u)),unshare --user --map-user=65534 --map-group=65534)
test-unit:
	$(NOROOT) $(GO) test -count=1 -timeout 15m ./...

# Everything: unit, known-answer, fuzz seeds, tshark and strongSwan
# interop, namespace labs (as root; they skip with a reason otherwise);
# first staticcheck and the BPF object against its source, as in make check.
test: deps vet staticcheck check-bpf
	$(GO) test -count=1 -timeout 25m ./...
	$(GO) test -count=1 -race -timeout 10m $(RACE_PKGS)
	# internal/gcm's whole suite again with the assembly off, so the
	# constant-time fallback that CPUs without AVX-512 VAES run is tested
	# on every machine, this one included.
	$(GO) test -count=1 -tags purego -timeout 10m ./internal/gcm

# Every Fuzz target in the tree, one after the other, FUZZTIME each
# (FUZZ=regexp picks targets by "package/FuzzName", FUZZPARALLEL sets the
# workers, FUZZMINIMIZETIME bounds minimizing); prints execs/s per target.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME='$(FUZZTIME)' FUZZ='$(FUZZ)' FUZZPARALLEL='$(FUZZPARALLEL)' FUZZMINIMIZETIME='$(FUZZMINIMIZETIME)' ./scripts/fuzz.sh

demo: deps build
	./scripts/demo.sh

bench: build bench-deps
	./scripts/bench.sh

# What only the lab comparison needs (DPDK's ipsec-secgw, perf): kept out of
# `make deps`, so that `make test` on a fresh machine stays small.
bench-deps:
	[ "$$(id -u)" -ne 0 ] || ./scripts/install-deps.sh --bench

# Rebuild the XDP object with clang, and the IKEv2 registry names with
# stringer (go tool stringer); the generated files are committed.
generate: deps
	$(GO) generate ./bpf
	$(GO) generate ./ike/iana ./ike/message

# Manual pages from the same source as --help and the commented
# configurations (xdpsec genman): build/man/xdpsec.8, xdpsec.yaml.5.
man: build
	./bin/xdpsec genman -o build/man

# The Debian package (build/xdpsec_VERSION_ARCH.deb) with nfpm, run as a Go
# tool: pinned (v2.45.2) in the tool block of a modfile of its own,
# scripts/package/nfpm.mod, so its hundred modules stay out of the
# gateway's go.mod. `go mod download -modfile=scripts/package/nfpm.mod`
# (or the first `make deb`) fetches it; after that it builds offline.
NFPM        ?= $(GO) tool -modfile=scripts/package/nfpm.mod nfpm
DEB_ARCH    ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_VERSION ?= $(shell git log -1 --format=0.0~git%cd.%h --date=format:%Y%m%d 2>/dev/null || echo 0.0~dev)
deb: man
	gzip -9nf build/man/xdpsec.8 build/man/xdpsec.yaml.5
	rm -f build/xdpsec_*.deb
	XDPSEC_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' $(NFPM) package -f scripts/package/nfpm.yaml -p deb -t build/
	@ls -l build/*.deb

clean:
	rm -rf bin bench/out build
