#!/usr/bin/env python3
"""Summary of scripts/benchlab/ab.sh: per variant and frame size the
median and range of xdpsec's delivered pps over the rounds, the median
ratio to the first variant's rounds (matched by round), and gwA's
syscalls per packet (sendto + recvfrom + poll over the packets its AF_XDP
sockets received, the whole run), and both gateways' CPU time (user +
system of the two daemons over the whole run) per packet gwA received.

usage: ab.py OUTDIR 'NAME;IFACE;NAPI' ...
"""
import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import load  # noqa: E402  (bench-lab.sh's own reader)


def pps_by_size(path):
    out = {}
    for row in load(path).get("rows", []):
        rec = row.get("xdpsec") or {}
        if isinstance(rec.get("rx_pps"), list):
            # bench-lab.sh's rounds format: one value per round (ab.sh runs one).
            vals = [v for v in rec["rx_pps"] if v]
            pps = statistics.median(vals) if vals else 0.0
        else:
            pps = (rec.get("sat") or {}).get("rx_pps", 0.0)
        if pps:
            out[row["size"]] = float(pps)
    return out


def syscalls(path):
    """(tx_kicks, rx_kicks, polls, rx_packets) summed over a gateway's
    sockets, or None."""
    snap = load(path)
    if not snap.get("xsk"):
        return None
    t = [0, 0, 0, 0]
    for x in snap["xsk"]:
        c = x.get("counters", {})
        for i, k in enumerate(("tx_kicks", "rx_kicks", "polls", "rx_packets")):
            t[i] += int(c.get(k, 0))
    return t


def cpu_ticks(path):
    """utime + stime of the gateways, in clock ticks, or None."""
    try:
        with open(path) as f:
            return sum(int(x) for ln in f for x in ln.split()[:2])
    except (OSError, ValueError):
        return None


def fmt(v):
    return "%.1f k" % (v / 1000)


def main(argv):
    out, variants = argv[0], [v.split(";")[0] for v in argv[1:]]
    runs = {}
    sizes = []
    for name in variants:
        runs[name] = {}
        for path in sorted(glob.glob(os.path.join(out, name + "-*.json"))):
            base = os.path.basename(path)[len(name) + 1:-5]
            if not base.isdigit():
                continue
            r = int(base)
            runs[name][r] = {"pps": pps_by_size(path), "gA": syscalls(os.path.join(out, "%s-%d-gA.stats.json" % (name, r))),
                             "ticks": cpu_ticks(os.path.join(out, "%s-%d.ticks" % (name, r)))}
            for s in runs[name][r]["pps"]:
                if s not in sizes:
                    sizes.append(s)
    first = variants[0]
    print("| variant | settings | " + " | ".join("%s B pps: median (min–max), ratio to %s" % (s, first) for s in sizes)
          + " | gwA sendto / recvfrom / poll per 1000 packets | gateways' CPU per packet, median (min–max) |")
    print("|---|---|" + "---:|" * len(sizes) + "---:|---:|")
    for v, name in zip(argv[1:], variants):
        parts = (v.split(";") + ["", "", "", ""])[1:5]
        labels = [parts[0], "napi_defer_hard_irqs %s, gro_flush_timeout %s ns" % tuple(parts[1].split()) if parts[1] else "",
                  "%s hugepages" % parts[2] if parts[2] else "", "binary %s" % os.path.basename(parts[3]) if parts[3] else ""]
        settings = "; ".join(p for p in labels if p) or "defaults"
        cells = []
        for s in sizes:
            vals = [r["pps"][s] for r in runs[name].values() if s in r["pps"]]
            if not vals:
                cells.append("n/a")
                continue
            ratios = [runs[name][k]["pps"][s] / runs[first][k]["pps"][s] for k in runs[name]
                      if s in runs[name][k]["pps"] and k in runs[first] and runs[first][k]["pps"].get(s)]
            cells.append("%s (%s–%s), %.3f" % (fmt(statistics.median(vals)), fmt(min(vals)), fmt(max(vals)),
                                              statistics.median(ratios) if ratios else float("nan")))
        sc = [r["gA"] for r in runs[name].values() if r["gA"] and r["gA"][3]]
        if sc:
            per = [[1000.0 * x[i] / x[3] for x in sc] for i in range(3)]
            cells.append(" / ".join("%.1f" % statistics.median(p) for p in per))
        else:
            cells.append("n/a")
        hz = os.sysconf("SC_CLK_TCK")
        cpu = [1e6 * r["ticks"] / hz / r["gA"][3] for r in runs[name].values() if r["ticks"] and r["gA"] and r["gA"][3]]
        cells.append("%.2f µs (%.2f–%.2f)" % (statistics.median(cpu), min(cpu), max(cpu)) if cpu else "n/a")
        print("| %s | %s | %s |" % (name, settings, " | ".join(cells)))
    print()
    print("%d rounds; pps = delivered at hostB (bench-lab.sh, MODES=xdpsec); ratio = median over rounds of "
          "the variant's pps over %s's in the same round." % (max((len(r) for r in runs.values()), default=0), first))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
