package bpf

// Rebuild xdpsec_bpfel.go and xdpsec_bpfel.o from xdpsec.c (needs clang and
// llvm-strip; nothing else, the C side carries its own headers). The outputs
// are committed so a plain `go build` needs no C toolchain.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -type counter -type spd_action -type in_action -cflags "-O2 -g -Wall -Werror" xdpsec xdpsec.c
