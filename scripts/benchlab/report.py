#!/usr/bin/env python3
"""Numbers and the table of scripts/bench-lab.sh.

Reads xdpgen's `run -o json` summaries (bench/gen: tx and rx counters,
"missing" = sent less distinct packets received) and writes:

  rate FILE FRACTION          the loss run's rate: FRACTION of the
                              delivered pps in FILE (0 if none arrived)
  record MODE SIZE SAT LOSS R one JSON line for a mode and size
  line   MODE SIZE SAT LOSS R one progress line for people
  table RESULTS JSONOUT ...   the markdown table (stdout) and the JSON copy
"""
import argparse
import json
import sys

MODES = ("kernel", "xdpsec", "strongswan")
NAMES = {"kernel": "kernel", "xdpsec": "xdpsec", "strongswan": "strongSwan"}


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


def summarize(mode, size, sat_path, loss_path, rate, flat_path):
    sat, loss = load(sat_path), load(loss_path)
    pps, mbps = delivered(sat)
    tx = sat.get("tx") or {}
    rec = {
        "mode": mode,
        "size": size,
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


def table(args):
    recs = {}
    order = []
    with open(args.results) as f:
        for ln in f:
            ln = ln.strip()
            if not ln:
                continue
            r = json.loads(ln)
            recs[(r["mode"], r["size"])] = r
            if r["size"] not in order:
                order.append(r["size"])

    def pps(mode, size):
        r = recs.get((mode, size))
        return r["sat"]["rx_pps"] if r else 0.0

    def gbps(mode, size):
        r = recs.get((mode, size))
        return "%.2f" % r["sat"]["rx_gbps"] if r else "n/a"

    out = []
    w = out.append
    w("## Lab: delivered rate at saturation, one generator, three gateway pairs")
    w("")
    w("| size | kernel pps | xdpsec pps | strongSwan pps | xdpsec/kernel | xdpsec/strongSwan "
      "| Gbit/s kernel / xdpsec / strongSwan | loss at %d%% of max: kernel / xdpsec / strongSwan |"
      % round(args.loss_fraction * 100))
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for size in order:
        k, x, s = (pps(m, size) for m in MODES)
        label = "IMIX" if size == "imix" else "%s B" % size
        w("| %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s |" % (
            label, fmt_pps(k), fmt_pps(x), fmt_pps(s), ratio(x, k), ratio(x, s),
            gbps("kernel", size), gbps("xdpsec", size), gbps("strongswan", size),
            loss_cell(recs.get(("kernel", size))), loss_cell(recs.get(("xdpsec", size))),
            loss_cell(recs.get(("strongswan", size)))))
        rows.append({"size": size, "kernel": recs.get(("kernel", size)),
                     "xdpsec": recs.get(("xdpsec", size)),
                     "strongswan": recs.get(("strongswan", size)),
                     "xdpsec_over_kernel": x / k if k > 0 else None,
                     "xdpsec_over_strongswan": x / s if s > 0 else None})
    w("")
    w("Delivered = packets the AF_XDP sink on hostB counted over its first-to-last-packet time, "
      "the best of sending flat out for %s s from hostA and a ladder of offered rates (%s s each, "
      "x1.5 while the gateways keep up; flat-out strongSwan collapses far below what it carries "
      "at a rate it can take). Generator: xdpgen, AF_XDP copy mode on veth, %d flow%s; "
      "Gbit/s counts Ethernet frames without FCS. Loss runs send at %d%% of each mode's own "
      "delivered maximum for %s s; loss = sent less distinct packets received."
      % (args.duration, args.probe_duration, args.flows, "" if args.flows == 1 else "s",
         round(args.loss_fraction * 100), args.duration))
    flat = []
    for size in order:
        cells = []
        for m in MODES:
            r = recs.get((m, size))
            cells.append(fmt_pps(r.get("flat_out_rx_pps", 0.0)) if r else "n/a")
        flat.append("%s %s" % ("IMIX" if size == "imix" else size + " B", " / ".join(cells)))
    w("Flat out alone delivered (kernel / xdpsec / strongSwan pps): " + "; ".join(flat) + ".")
    w("xdpsec: static SAs, aes128gcm16, %s; strongSwan 5.9.8: PSK, aes128gcm16, kernel-libipsec "
      "(ESP-in-UDP); kernel: routes only, no XDP on the gateways. LAN MTU %d (IMIX's 1518 B frame)."
      % ("raw ESP" if args.encap == "esp" else "ESP-in-UDP", args.lan_mtu))
    w("Pinning (%d CPUs): %s" % (args.cpus, args.pinning))
    w("Kernel %s; load average before the run %s; whole run %d s."
      % (args.kernel, args.load, args.elapsed))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(args.json_out, "w") as f:
        json.dump({"rows": rows, "duration_s": args.duration, "probe_duration_s": args.probe_duration, "loss_fraction": args.loss_fraction,
                   "flows": args.flows, "xdpsec_encap": args.encap, "lan_mtu": args.lan_mtu,
                   "pinning": args.pinning, "cpus": args.cpus, "kernel": args.kernel,
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
    if len(argv) == 7 and argv[0] in ("record", "line"):
        rec = summarize(argv[1], argv[2], argv[3], argv[4], int(argv[5]), argv[6])
        if argv[0] == "record":
            print(json.dumps(rec))
        else:
            s, lr = rec["sat"], rec["loss_run"]
            lt = "loss run: none"
            if lr:
                lt = "at %s pps: %d of %d missing (%d at the sink)" % (
                    fmt_pps(lr["rate_pps"]), lr["missing"], lr["tx_packets"], lr["sink_drops"])
            off = "flat out" if s["offered_pps"] is None else "offered %s pps" % fmt_pps(s["offered_pps"])
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
        table(p.parse_args(argv[1:]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
