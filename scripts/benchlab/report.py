#!/usr/bin/env python3
"""Numbers and the table of scripts/bench-lab.sh.

Reads xdpgen's `run -o json` summaries (bench/gen: tx and rx counters,
"missing" = sent less distinct packets received) and writes:

  rate FILE FRACTION          the loss run's rate: FRACTION of the
                              delivered pps in FILE (0 if none arrived)
  record MODE SIZE SAT LOSS R one JSON line for a mode and size
  line   MODE SIZE SAT LOSS R one progress line for people
  table RESULTS JSONOUT ...   the markdown table (stdout) and the JSON copy
  cpusnap OUT "PIDS" "CPUS"   a snapshot of the gateways' CPU time (JSON to
                              OUT): user + system of PIDS and their
                              descendants (/proc/PID/stat) and the softirq
                              time of CPUS (/proc/stat)
  cpuwindow OUT "PIDS" "CPUS" HAPID HBPID DUR
                              two snapshots inside a run of DUR s (OUT.cpu0,
                              OUT.cpu1) with hostB's received frames, taken
                              by one process (HAPID, HBPID: processes in
                              hostA's and hostB's namespaces)

CPU per packet (record's "cpu"): the gateways' CPU time between two
snapshots inside the saturation run, while traffic flows, over the frames
hostB received between them: CPU microseconds per delivered packet
(= ms per million packets / 1000).
"""
import argparse
import json
import os
import statistics
import sys
import time

MODES = ("kernel", "dpdk", "xdpsec", "strongswan", "ceiling")
NAMES = {"kernel": "kernel", "dpdk": "DPDK ipsec-secgw", "xdpsec": "xdpsec", "strongswan": "strongSwan",
         "ceiling": "ceiling"}


def load(path):
    """An xdpgen summary, or {} when the run produced none."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def delivered(s):
    """Delivered pps and Mbit/s at the sink: rx counts over the sink's
    own first-to-last-packet time."""
    rx = s.get("rx") or {}
    return float(rx.get("pps", 0.0)), float(rx.get("mbps", 0.0))


def offered_rate(path):
    """The --rate of a ladder step (its file is MODE-SIZE-at-RATE.json);
    None for the flat-out run."""
    base = path.rsplit("/", 1)[-1]
    if "-at-" in base:
        return int(base.rsplit("-at-", 1)[1].split(".")[0])
    return None


def step(best_path, path, offered):
    """One ladder step: the file with the higher delivered rate, and the
    next rate to offer: 1.5 times this one while the gateways delivered
    at least 95% of it or 10% more than the best so far (a gateway that
    loses a fixed share, such as strongSwan IMIX's 1518 B frames, never
    reaches 95%), else 0 (past saturation: stop)."""
    got, _ = delivered(load(path))
    best, _ = delivered(load(best_path))
    keep = path if got > best else best_path
    nxt = int(offered * 1.5) if got >= 0.95 * offered or got >= 1.10 * best else 0
    return keep, nxt


def sink_drops(s):
    """Frames the kernel dropped on the way into the sink's socket: lost
    at hostB, not in the gateways."""
    rx = s.get("rx") or {}
    return int(rx.get("ring_full", 0)) + int(rx.get("kernel_dropped", 0))


def summarize(mode, size, sat_path, loss_path, rate, flat_path, rnd=1):
    sat, loss = load(sat_path), load(loss_path)
    pps, mbps = delivered(sat)
    tx = sat.get("tx") or {}
    rec = {
        "mode": mode,
        "size": size,
        "round": rnd,
        "cpu": cpu_cost(load(sat_path + ".cpu0"), load(sat_path + ".cpu1"), pps),
        "flat_out_rx_pps": delivered(load(flat_path))[0],
        "sat": {
            "offered_pps": offered_rate(sat_path),
            "tx_pps": float(tx.get("pps", 0.0)),
            "rx_pps": pps,
            "rx_gbps": mbps / 1000,
            "tx_packets": int(tx.get("packets", 0)),
            "rx_packets": int((sat.get("rx") or {}).get("packets", 0)),
            "missing": int(sat.get("missing", 0) or 0),
            "sink_drops": sink_drops(sat),
        },
        "loss_run": None,
    }
    ltx = loss.get("tx") or {}
    if ltx:
        sent = int(ltx.get("packets", 0))
        missing = int(loss.get("missing", 0) or 0)
        rec["loss_run"] = {
            "rate_pps": int(rate),
            "tx_packets": sent,
            "rx_packets": int((loss.get("rx") or {}).get("packets", 0)),
            "missing": missing,
            "loss_pct": 100.0 * max(missing, 0) / sent if sent else None,
            "sink_drops": sink_drops(loss),
        }
    return rec


def pid_ticks(text):
    """utime + stime (clock ticks) from one /proc/PID/stat line; the
    command name in parentheses may hold spaces and parentheses."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): utime and stime are fields 14 and 15.
    return int(rest[11]) + int(rest[12])


def pid_parent(text):
    """The parent PID (field 4) from one /proc/PID/stat line."""
    return int(text[text.rindex(")") + 2:].split()[1])


def softirq_ticks(text, cpus):
    """The summed softirq ticks of the CPUs listed, from /proc/stat
    ("cpuN user nice system idle iowait irq softirq ..."); a CPU the file
    does not list is an error."""
    want = {"cpu%d" % c for c in cpus}
    total = 0
    for ln in text.splitlines():
        f = ln.split()
        if f and f[0] in want:
            total += int(f[7])
            want.discard(f[0])
    if want:
        raise ValueError("no %s in /proc/stat" % ", ".join(sorted(want)))
    return total


def busy_ticks(text, cpus):
    """The summed non-idle ticks (all but idle and iowait) of the CPUs
    listed, from /proc/stat: what else ran there, for a cross-check."""
    want = {"cpu%d" % c for c in cpus}
    total = 0
    for ln in text.splitlines():
        f = ln.split()
        if f and f[0] in want:
            v = [int(x) for x in f[1:9]]
            total += sum(v) - v[3] - v[4]
    return total


def netdev_packets(text, dev, col):
    """A counter of one interface from /proc/PID/net/dev (the namespace of
    PID): col "rx" or "tx" packets."""
    for ln in text.splitlines():
        if ":" not in ln:
            continue
        name, rest = ln.split(":", 1)
        if name.strip() == dev:
            f = rest.split()
            return int(f[1] if col == "rx" else f[9])
    raise ValueError("no %s in net/dev" % dev)


def window(pids, cpus, ha_pid, hb_pid, dur, proc="/proc", clock=time.monotonic, sleep=time.sleep):
    """Two snapshots inside a generator run, with the frames hostB received
    (hb_pid's namespace, eth0) in each: the first 0.3 s after hostA
    (ha_pid's namespace) sent 2000 frames, the second dur - 0.8 s later.
    One process from before the run to its end, so that its own start
    does not shift the window. None if the traffic never came."""
    def tx():
        return netdev_packets(read("%s/%d/net/dev" % (proc, ha_pid)), "eth0", "tx")
    base, start = tx(), clock()
    while tx() < base + 2000:
        if clock() - start > 10:
            return None
        sleep(0.01)
    sleep(0.3)
    out = []
    for i in range(2):
        s = snapshot(pids, cpus, proc, now=clock())
        s["rx_packets"] = netdev_packets(read("%s/%d/net/dev" % (proc, hb_pid)), "eth0", "rx")
        out.append(s)
        if i == 0:
            sleep(max(0.2, dur - 0.8))
    return out


def read(path):
    with open(path) as f:
        return f.read()


def family(pids, proc="/proc"):
    """PIDS and every process descended from them."""
    parent = {}
    for d in os.listdir(proc):
        if d.isdigit():
            try:
                parent[int(d)] = pid_parent(read("%s/%s/stat" % (proc, d)))
            except (OSError, ValueError, IndexError):
                pass  # gone, or not a process
    out = set(p for p in pids if p in parent)
    grew = True
    while grew:
        grew = False
        for p, pp in parent.items():
            if pp in out and p not in out:
                out.add(p)
                grew = True
    return sorted(out)


def snapshot(pids, cpus, proc="/proc", now=None):
    """The gateways' CPU counters now: ticks per PID (the gateways and
    their descendants) and the softirq ticks of their CPUs."""
    ticks = {}
    for p in family(pids, proc):
        try:
            ticks[str(p)] = pid_ticks(read("%s/%d/stat" % (proc, p)))
        except (OSError, ValueError, IndexError):
            pass
    stat = read(proc + "/stat")
    return {"t": time.monotonic() if now is None else now,
            "hz": os.sysconf("SC_CLK_TCK"),
            "pids": ticks, "cpus": list(cpus),
            "softirq": softirq_ticks(stat, cpus), "busy": busy_ticks(stat, cpus)}


def cpu_cost(a, b, pps):
    """CPU per packet between snapshots a and b at a delivered rate of
    pps: the gateways' process time (PIDs in both snapshots) and their
    CPUs' softirq time, in CPU seconds per second (util) and µs per
    packet. None without two snapshots or traffic."""
    if not a or not b or b["t"] <= a["t"]:
        return None
    hz, dt = float(a["hz"]), b["t"] - a["t"]
    if "rx_packets" in a and "rx_packets" in b:
        # The packets hostB received in the window itself.
        pps = (b["rx_packets"] - a["rx_packets"]) / dt
    if pps <= 0:
        return None
    proc = sum(b["pids"][p] - a["pids"][p] for p in a["pids"] if p in b["pids"]) / hz
    soft = (b["softirq"] - a["softirq"]) / hz
    busy = (b.get("busy", 0) - a.get("busy", 0)) / hz
    return {"window_s": dt, "proc_util": proc / dt, "softirq_util": soft / dt,
            "cpus_busy": busy / dt / max(1, len(a.get("cpus", [])) or 1),
            "util": (proc + soft) / dt,
            "us_per_pkt": (proc + soft) / dt / pps * 1e6,
            "busy_us_per_pkt": busy / dt / pps * 1e6,
            "proc_us_per_pkt": proc / dt / pps * 1e6,
            "softirq_us_per_pkt": soft / dt / pps * 1e6}



def fmt_pps(x):
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    if x >= 1e3:
        return "%.1f k" % (x / 1e3)
    return "%.0f" % x


def ratio(a, b):
    return "%.2f×" % (a / b) if b > 0 else "n/a"


def loss_cell(r):
    lr = r.get("loss_run") if r else None
    if not lr or lr.get("loss_pct") is None:
        return "n/a"
    if lr["missing"] <= 0:
        return "0"
    return "%.3f%%" % lr["loss_pct"]


def median_range(xs, fmt):
    """"median (min–max)" of the values, or the one value, or n/a."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    m = fmt(statistics.median(xs))
    if len(xs) == 1 or min(xs) == max(xs):
        return m
    return "%s (%s–%s)" % (m, fmt(min(xs)), fmt(max(xs)))


def fmt_us(x):
    return "%.2f" % x


def fmt_ratio(x):
    return "%.2f×" % x


def load_results(path):
    """The records of a results file: {(mode, size, round): record}, the
    sizes in order of appearance, the rounds."""
    recs, order, rounds = {}, [], set()
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if not ln:
                continue
            r = json.loads(ln)
            rnd = r.get("round", 1)
            recs[(r["mode"], r["size"], rnd)] = r
            rounds.add(rnd)
            if r["size"] not in order:
                order.append(r["size"])
    return recs, order, sorted(rounds)


def table(args):
    recs, order, rounds = load_results(args.results)
    modes = [m for m in MODES if any(k[0] == m for k in recs)]

    def per_round(mode, size, f):
        out = []
        for rnd in rounds:
            r = recs.get((mode, size, rnd))
            out.append(f(r) if r else None)
        return out

    def pps_of(r):
        return r["sat"]["rx_pps"]

    def us_of(r):
        c = r.get("cpu")
        return c["us_per_pkt"] if c else None

    def busy_of(r):
        c = r.get("cpu")
        return c.get("busy_us_per_pkt") if c else None

    def ratios(a, b, size):
        out = []
        for x, y in zip(per_round(a, size, pps_of), per_round(b, size, pps_of)):
            out.append(x / y if x and y else None)
        return out

    out = []
    w = out.append
    label = {m: NAMES[m] for m in modes}
    w("## Lab: delivered pps at saturation and gateway CPU per packet, %d round%s"
      % (len(rounds), "" if len(rounds) == 1 else "s"))
    w("")
    w("Delivered packets per second, median (min–max) over the rounds:")
    w("")
    hdr = "| size | " + " | ".join(label[m] for m in modes)
    ratio_cols = [(a, b) for a, b in (("xdpsec", "dpdk"), ("xdpsec", "ceiling"), ("xdpsec", "kernel"))
                  if a in modes and b in modes]
    hdr += "".join(" | %s/%s" % (label[a], label[b]) for a, b in ratio_cols) + " |"
    w(hdr)
    w("|---|" + "---:|" * (len(modes) + len(ratio_cols)))
    rows = []
    for size in order:
        lab = "IMIX" if size == "imix" else "%s B" % size
        cells = [median_range(per_round(m, size, pps_of), fmt_pps) for m in modes]
        cells += [median_range(ratios(a, b, size), fmt_ratio) for a, b in ratio_cols]
        w("| %s | %s |" % (lab, " | ".join(cells)))
        row = {"size": size}
        for m in modes:
            row[m] = {"rx_pps": per_round(m, size, pps_of), "cpu_us_per_pkt": per_round(m, size, us_of),
                      "records": per_round(m, size, lambda r: r)}
        for a, b in ratio_cols:
            row["%s_over_%s" % (a, b)] = ratios(a, b, size)
        rows.append(row)
    w("")
    w("Gateway CPU per delivered packet, µs (= CPU ms per million packets / 1000), median (min–max); "
      "first the issue's measure, the gateway processes' user + system time plus their CPUs' softirq "
      "time, then the gateways' CPUs' whole busy time:")
    w("")
    w("| size | measure | " + " | ".join(label[m] for m in modes) + " |")
    w("|---|---|" + "---:|" * len(modes))
    for size in order:
        lab = "IMIX" if size == "imix" else "%s B" % size
        w("| %s | processes + softirq | %s |" % (
            lab, " | ".join(median_range(per_round(m, size, us_of), fmt_us) for m in modes)))
        w("| %s | CPUs busy | %s |" % (
            lab, " | ".join(median_range(per_round(m, size, busy_of), fmt_us) for m in modes)))
    w("")
    w("This kernel accounts CPU time by tick (no IRQ time accounting): softirq work that runs while a "
      "gateway process is on the CPU (the veth receive work its own sendto raises, most of an AF_XDP "
      "gateway's kernel time) is charged both to that process's system time and to the CPU's softirq "
      "time, so the first measure counts it twice; the second has no overlap but also counts whatever "
      "else ran on those CPUs (the neighbours' jobs). The truth lies between them.")
    w("")
    split = []
    for size in order:
        for m in modes:
            cs = [r.get("cpu") for r in per_round(m, size, lambda r: r) if r and r.get("cpu")]
            if cs:
                split.append("%s %s %.2f + %.2f (%.0f%% + %.0f%% of a CPU)" % (
                    NAMES[m], size, statistics.median(c["proc_us_per_pkt"] for c in cs),
                    statistics.median(c["softirq_us_per_pkt"] for c in cs),
                    100 * statistics.median(c["proc_util"] for c in cs),
                    100 * statistics.median(c["softirq_util"] for c in cs)))
    if split:
        w("CPU split, µs per packet, gateway processes + softirq of their CPUs (and the share of a CPU "
          "each used): " + "; ".join(split) + ".")
    loss = []
    for size in order:
        cells = []
        for m in modes:
            cs = [loss_cell(r) for r in per_round(m, size, lambda r: r) if r]
            cells.append("/".join(cs) if cs else "n/a")
        loss.append("%s %s" % ("IMIX" if size == "imix" else size + " B", " · ".join(cells)))
    w("Loss at %d%% of each mode's own delivered maximum (%s; per round): %s."
      % (round(args.loss_fraction * 100), " · ".join(label[m] for m in modes), "; ".join(loss)))
    w("")
    w("Delivered = packets the AF_XDP sink on hostB counted over its first-to-last-packet time, "
      "the best of sending flat out for %s s from hostA and a ladder of offered rates (%s s each, "
      "x1.5 while the gateways keep up; flat-out strongSwan collapses far below what it carries "
      "at a rate it can take). Generator: xdpgen, AF_XDP copy mode on veth, %d flow%s. "
      "CPU: user + system time of the gateway processes (and their children, /proc/PID/stat) plus the "
      "softirq time of the gateways' CPUs (/proc/stat), between two samples inside the best run while traffic "
      "flows, over the frames hostB received between them; kernel forwarding has no process, only softirq. Modes alternate "
      "within each round (%s)."
      % (args.duration, args.probe_duration, args.flows, "" if args.flows == 1 else "s",
         args.order.replace(";", "; ")))
    w("Gateways: xdpsec static SAs, aes128gcm16, %s; DPDK 22.11 ipsec-secgw (%s), AES-128-GCM "
      "tunnel, static SAs, net_af_xdp PMD, Intel IPsec-MB; strongSwan 5.9.8: PSK, aes128gcm16, "
      "kernel-libipsec (ESP-in-UDP); ceiling: xdpsec with bench_null_cipher (run --bench): the same "
      "worker and ESP framing, no encryption or authentication; kernel: routes only, no XDP on the "
      "gateways. LAN MTU %d."
      % ("raw ESP" if args.encap == "esp" else "ESP-in-UDP", args.dpdk, args.lan_mtu))
    w("Pinning (%d CPUs): %s" % (args.cpus, args.pinning))
    w("Kernel %s; load average before the run %s, after %s; whole run %d s. The machine is shared "
      "with other jobs: read the ratios of one round, and the ranges."
      % (args.kernel, args.load, args.load_after, args.elapsed))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(args.json_out, "w") as f:
        json.dump({"rows": rows, "rounds": rounds, "duration_s": args.duration,
                   "probe_duration_s": args.probe_duration, "loss_fraction": args.loss_fraction,
                   "flows": args.flows, "xdpsec_encap": args.encap, "lan_mtu": args.lan_mtu,
                   "pinning": args.pinning, "cpus": args.cpus, "kernel": args.kernel, "dpdk": args.dpdk,
                   "elapsed_s": args.elapsed}, f, indent=2)
        f.write("\n")


def main(argv):
    if len(argv) >= 3 and argv[0] == "rate":
        pps, _ = delivered(load(argv[1]))
        print(int(pps * float(argv[2])))
        return 0
    if len(argv) == 4 and argv[0] == "step":
        keep, nxt = step(argv[1], argv[2], int(argv[3]))
        print(keep, nxt)
        return 0
    if len(argv) == 7 and argv[0] == "cpuwindow":
        pids = [int(p) for p in argv[2].split()]
        cpus = sorted(set(int(c) for c in argv[3].split()))
        w = window(pids, cpus, int(argv[4]), int(argv[5]), float(argv[6])) or [{}, {}]
        for i in range(2):
            with open("%s.cpu%d" % (argv[1], i), "w") as f:
                json.dump(w[i], f)
        return 0
    if len(argv) == 4 and argv[0] == "cpusnap":
        pids = [int(p) for p in argv[2].split()]
        cpus = sorted(set(int(c) for c in argv[3].split()))
        with open(argv[1], "w") as f:
            json.dump(snapshot(pids, cpus), f)
        return 0
    if len(argv) in (7, 8) and argv[0] in ("record", "line"):
        rnd = int(argv[7]) if len(argv) == 8 else 1
        rec = summarize(argv[1], argv[2], argv[3], argv[4], int(argv[5]), argv[6], rnd)
        if argv[0] == "record":
            print(json.dumps(rec))
        else:
            s, lr = rec["sat"], rec["loss_run"]
            lt = "loss run: none"
            if lr:
                lt = "at %s pps: %d of %d missing (%d at the sink)" % (
                    fmt_pps(lr["rate_pps"]), lr["missing"], lr["tx_packets"], lr["sink_drops"])
            off = "flat out" if s["offered_pps"] is None else "offered %s pps" % fmt_pps(s["offered_pps"])
            c = rec["cpu"]
            if c:
                lt += "; CPU %.2f µs/pkt (%.0f%% + %.0f%% softirq of a CPU; the CPUs %.0f%% busy)" % (
                    c["us_per_pkt"], 100 * c["proc_util"], 100 * c["softirq_util"], 100 * c["cpus_busy"])
            print("%-10s %-5s best: %s, sent %s pps, delivered %s pps (%.2f Gbit/s, %d dropped at the sink; "
                  "flat out delivered %s pps); %s"
                  % (rec["mode"], rec["size"], off, fmt_pps(s["tx_pps"]), fmt_pps(s["rx_pps"]),
                     s["rx_gbps"], s["sink_drops"], fmt_pps(rec["flat_out_rx_pps"]), lt))
        return 0
    if argv and argv[0] == "table":
        p = argparse.ArgumentParser(prog="report.py table")
        p.add_argument("results")
        p.add_argument("json_out")
        p.add_argument("--pinning", default="")
        p.add_argument("--duration", type=float, default=3)
        p.add_argument("--probe-duration", type=float, default=2)
        p.add_argument("--loss-fraction", type=float, default=0.5)
        p.add_argument("--flows", type=int, default=1)
        p.add_argument("--encap", default="esp")
        p.add_argument("--lan-mtu", type=int, default=1500)
        p.add_argument("--elapsed", type=int, default=0)
        p.add_argument("--cpus", type=int, default=0)
        p.add_argument("--kernel", default="")
        p.add_argument("--load", default="")
        p.add_argument("--load-after", default="")
        p.add_argument("--order", default="")
        p.add_argument("--dpdk", default="")
        table(p.parse_args(argv[1:]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
