// Command benchtable turns `go test -bench` output of the data-plane
// packages into the markdown tables of bench/RESULTS.md: every figure
// beside its baseline from the same run, with the ratio, so the numbers
// mean something on a shared, noisy machine.
//
//	go test -run '^$' -bench . ./fastpath ./fastpath/esp ./sad ./sad/spd | benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// results maps "pkg-suffix:BenchmarkName/sub" to ns/op; when a benchmark
// ran several times (-count), the fastest run is kept: noise only ever
// adds time.
type results map[string]float64

func parse(r io.Reader) (results, []string) {
	res := results{}
	var cpu []string
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t := sc.Text()
		if strings.HasPrefix(t, "pkg: ") {
			pkg = strings.TrimPrefix(t, "pkg: github.com/xdpsec/xdpsec/")
			continue
		}
		if strings.HasPrefix(t, "cpu: ") && len(cpu) == 0 {
			cpu = append(cpu, strings.TrimPrefix(t, "cpu: "))
		}
		m := line.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		k := pkg + ":" + m[1]
		if old, ok := res[k]; !ok || ns < old {
			res[k] = ns
		}
	}
	return res, cpu
}

func (r results) get(k string) (float64, bool) { v, ok := r[k]; return v, ok }

var sizes = []string{"64", "512", "1400", "imix"}

func main() {
	res, cpu := parse(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if len(cpu) > 0 {
		fmt.Fprintf(w, "CPU: %s. Best of the runs; one core; ratios within one run.\n\n", cpu[0])
	}

	section := func(title, pkg, num, base string, names []string, sub func(n, s string) string, basesub func(s string) string) {
		fmt.Fprintf(w, "### %s\n\n| case | size | ns/op | Mpps | baseline ns/op | ratio |\n|---|---|---:|---:|---:|---:|\n", title)
		for _, n := range names {
			for _, s := range sizes {
				v, ok := res.get(pkg + ":" + num + "/" + sub(n, s))
				b, okb := res.get(pkg + ":" + base + "/" + basesub(s))
				if !ok || !okb {
					continue
				}
				fmt.Fprintf(w, "| %s | %s | %.1f | %.2f | %.1f | %.2f |\n", n, s, v, 1000/v, b, v/b)
			}
		}
		fmt.Fprintln(w)
	}
	suites := []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256"}
	section("ESP encapsulation (fastpath/esp Encap) vs bare AES-GCM-128 Seal of the inner size", "fastpath/esp",
		"BenchmarkEncap", "BenchmarkAEADSeal", suites,
		func(n, s string) string { return n + "/size=" + s }, func(s string) string { return "size=" + s })
	section("ESP decapsulation (ParseOuter + Decap, replay on) vs bare AES-GCM-128 Open", "fastpath/esp",
		"BenchmarkDecap", "BenchmarkAEADOpen", suites,
		func(n, s string) string { return n + "/size=" + s }, func(s string) string { return "size=" + s })
	rx := []string{"staged", "copy"}
	section("Whole pipeline, AES-GCM-128, worker polls of 64 (RX, SPD, SA, seq, ESP, TX) vs bare Seal; rx=staged: frames already in port memory (zero-copy NIC), rx=copy: copied in on the clock (copy-mode AF_XDP)", "fastpath",
		"BenchmarkPipelineEncap", "BenchmarkBareSeal", rx,
		func(n, s string) string { return "rx=" + n + "/size=" + s }, func(s string) string { return "size=" + s })
	section("Whole pipeline, decap (RX, SPI, replay, open, selectors, TX) vs bare Open; rx as above", "fastpath",
		"BenchmarkPipelineDecap", "BenchmarkBareOpen", rx,
		func(n, s string) string { return "rx=" + n + "/size=" + s }, func(s string) string { return "size=" + s })

	fmt.Fprintf(w, "### SA lookup by SPI (sad.Table) against the same lookup in a table of one\n\n| SAs | working set | ns/op | ratio to 1 SA |\n|---|---|---:|---:|\n")
	for _, set := range []string{"hot", "spread"} {
		b, okb := res.get("sad:BenchmarkLookup/sas=1/" + set)
		for _, n := range []string{"1", "1000", "1000000"} {
			if v, ok := res.get("sad:BenchmarkLookup/sas=" + n + "/" + set); ok && okb {
				fmt.Fprintf(w, "| %s | %s | %.2f | %.2f |\n", n, set, v, v/b)
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "### SPD lookup (sad/spd) against the same lookup with one policy\n\n| family | policies | ns/op | ratio to 1 |\n|---|---|---:|---:|\n")
	for _, fam := range []struct{ name, bench string }{{"IPv4", "BenchmarkLookup"}, {"IPv6", "BenchmarkLookupIPv6"}} {
		b, okb := res.get("sad/spd:" + fam.bench + "/policies=1")
		for _, n := range []string{"1", "100", "10000"} {
			if v, ok := res.get("sad/spd:" + fam.bench + "/policies=" + n); ok && okb {
				fmt.Fprintf(w, "| %s | %s | %.2f | %.2f |\n", fam.name, n, v, v/b)
			}
		}
	}
	fmt.Fprintln(w)
}
