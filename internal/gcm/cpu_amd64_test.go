//go:build amd64 && !purego

package gcm

import (
	"testing"

	"github.com/klauspost/cpuid/v2"
)

// TestAsmMatchesCPU: the assembly runs exactly where an independent CPU
// probe (klauspost/cpuid, which the daemon logs at start) says the CPU
// has what it needs, so on a CPU without VAES the default is the
// constant-time fallback. It logs which path this machine's default is;
// the purego run covers the fallback either way.
func TestAsmMatchesCPU(t *testing.T) {
	c := cpuid.CPU
	has := c.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512VL, cpuid.VAES, cpuid.VPCLMULQDQ,
		cpuid.AESNI, cpuid.CLMUL, cpuid.AVX, cpuid.BMI2)
	if has != useAsm {
		t.Fatalf("cpuid says AVX-512+VAES+VPCLMULQDQ: %v; useAsm %v", has, useAsm)
	}
	if useAsm {
		t.Logf("%s: VAES present, New runs the assembly; -tags purego forces the fallback", c.BrandName)
	} else {
		t.Logf("%s: no VAES/AVX-512, New runs crypto/cipher's GCM", c.BrandName)
	}
}
