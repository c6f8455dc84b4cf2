"""Tests of report.py (python3 -m unittest in scripts/benchlab; bench/
runs them under go test): the CPU accounting from fixture /proc files,
and the table from fixture records."""
import json
import os
import tempfile
import unittest

import report

HERE = os.path.dirname(os.path.abspath(__file__))
PROC = os.path.join(HERE, "testdata", "proc")


class ProcParsers(unittest.TestCase):
    def test_pid_ticks(self):
        # utime 150 + stime 70, past a command name with spaces and ")".
        with open(os.path.join(PROC, "4242", "stat")) as f:
            line = f.read()
        self.assertEqual(report.pid_ticks(line), 220)
        self.assertEqual(report.pid_parent(line), 1)

    def test_softirq(self):
        with open(os.path.join(PROC, "stat")) as f:
            text = f.read()
        self.assertEqual(report.softirq_ticks(text, [1]), 200)
        self.assertEqual(report.softirq_ticks(text, [0, 1]), 300)
        # Not the aggregate "cpu" line, and not the "softirq" line.
        self.assertEqual(report.softirq_ticks(text, [0]), 100)
        with self.assertRaises(ValueError):
            report.softirq_ticks(text, [2])
        # busy: user + nice + system + irq + softirq + steal.
        self.assertEqual(report.busy_ticks(text, [1]), 800 + 10 + 250 + 200)

    def test_family_and_snapshot(self):
        self.assertEqual(report.family([4242], PROC), [4242, 4243])
        self.assertEqual(report.family([999], PROC), [])
        s = report.snapshot([4242], [1], PROC, now=10.0)
        self.assertEqual(s["pids"], {"4242": 220, "4243": 35})
        self.assertEqual(s["softirq"], 200)

    def test_cpu_cost(self):
        a = {"t": 10.0, "hz": 100, "pids": {"1": 100, "2": 50, "gone": 7}, "cpus": [1],
             "softirq": 1000, "busy": 5000}
        b = {"t": 12.0, "hz": 100, "pids": {"1": 250, "2": 50, "new": 99}, "cpus": [1],
             "softirq": 1040, "busy": 5190}
        c = report.cpu_cost(a, b, 500000)
        # 1.5 s of process time and 0.4 s of softirq in 2 s: 0.95 CPU, at
        # 500 kpps 1.9 µs a packet; a PID in one snapshot only is left out.
        self.assertAlmostEqual(c["proc_util"], 0.75)
        self.assertAlmostEqual(c["softirq_util"], 0.2)
        self.assertAlmostEqual(c["us_per_pkt"], 1.9)
        self.assertAlmostEqual(c["busy_us_per_pkt"], 1.9)
        # With hostB's frames in the snapshots, the window's own count
        # decides: 400,000 in 2 s, whatever pps says.
        a["rx_packets"], b["rx_packets"] = 1000, 401000
        self.assertAlmostEqual(report.cpu_cost(a, b, 1)["us_per_pkt"], 0.95 / 200000 * 1e6)
        del a["rx_packets"], b["rx_packets"]
        self.assertIsNone(report.cpu_cost(a, b, 0))
        self.assertIsNone(report.cpu_cost(a, {}, 1000))
        self.assertIsNone(report.cpu_cost(b, a, 1000))


class Window(unittest.TestCase):
    def test_netdev(self):
        with open(os.path.join(PROC, "4242", "net", "dev")) as f:
            text = f.read()
        self.assertEqual(report.netdev_packets(text, "eth0", "rx"), 5001)
        self.assertEqual(report.netdev_packets(text, "eth0", "tx"), 7002)
        with self.assertRaises(ValueError):
            report.netdev_packets(text, "wan0", "rx")

    def test_window_waits_for_traffic(self):
        # hostA's counter (a fixture whose net/dev moves on each read)
        # and a fake clock: the first snapshot comes 0.3 s after 2000
        # frames, the second dur - 0.8 s later.
        with tempfile.TemporaryDirectory() as d:
            os.symlink(os.path.join(PROC, "stat"), os.path.join(d, "stat"))
            for p in ("4242", "4243", "77"):
                os.makedirs(os.path.join(d, p))
                os.symlink(os.path.join(PROC, p, "stat"), os.path.join(d, p, "stat"))
            os.makedirs(os.path.join(d, "4242", "net"))
            dev = os.path.join(d, "4242", "net", "dev")
            clock = [100.0]
            tx = [0]

            def write():
                with open(dev, "w") as f:
                    f.write("Inter-|\n face |\n  eth0: 0 %d 0 0 0 0 0 0 0 %d 0 0 0 0 0 0\n"
                            % (int(clock[0] * 10), tx[0]))

            def sleep(s):
                clock[0] += s
                tx[0] += 1000
                write()
            write()
            w = report.window([4242], [1], 4242, 4242, 3.0, proc=d, clock=lambda: clock[0], sleep=sleep)
            self.assertEqual(len(w), 2)
            self.assertAlmostEqual(w[1]["t"] - w[0]["t"], 2.2)
            # Not before 2000 frames: 0.3 s after the second 1000.
            self.assertAlmostEqual(w[0]["t"], 100.32)
            self.assertEqual(w[1]["rx_packets"] - w[0]["rx_packets"], 22)  # 2.2 s at 10 a second


def rec(mode, size, rnd, pps, us):
    return {"mode": mode, "size": size, "round": rnd, "flat_out_rx_pps": pps,
            "cpu": {"us_per_pkt": us, "busy_us_per_pkt": us, "proc_us_per_pkt": us / 2,
                    "softirq_us_per_pkt": us / 2, "proc_util": 0.5, "softirq_util": 0.5},
            "sat": {"rx_pps": pps, "rx_gbps": 0.1}, "loss_run": None}


class Table(unittest.TestCase):
    def test_medians_and_ratios(self):
        with tempfile.TemporaryDirectory() as d:
            res = os.path.join(d, "results.jsonl")
            with open(res, "w") as f:
                for rnd, (dp, xp, cp) in enumerate([(100e3, 150e3, 200e3), (120e3, 150e3, 160e3),
                                                    (110e3, 165e3, 180e3)], 1):
                    for m, p in (("dpdk", dp), ("xdpsec", xp), ("ceiling", cp)):
                        f.write(json.dumps(rec(m, "64", rnd, p, 2.0 * rnd)) + "\n")
            out = os.path.join(d, "lab.json")
            args = type("A", (), dict(results=res, json_out=out, duration=3, probe_duration=2,
                                      flows=1, order="x", encap="esp", dpdk="shared", lan_mtu=1504,
                                      cpus=2, pinning="", kernel="k", load="", load_after="",
                                      elapsed=1, loss_fraction=0.5))
            import io
            import contextlib
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                report.table(args)
            text = buf.getvalue()
            # Columns in the fixed order, only modes that ran.
            self.assertIn("| size | DPDK ipsec-secgw | xdpsec | ceiling | xdpsec/DPDK ipsec-secgw | "
                          "xdpsec/ceiling |", text)
            # Medians with ranges; ratios per round (xdpsec/DPDK 1.5, 1.25, 1.5;
            # xdpsec/ceiling 0.75, 0.94, 0.92), then their medians.
            self.assertIn("| 64 B | 110.0 k (100.0 k–120.0 k) | 150.0 k (150.0 k–165.0 k) | "
                          "180.0 k (160.0 k–200.0 k) | 1.50× (1.25×–1.50×) | 0.92× (0.75×–0.94×) |", text)
            self.assertIn("| 64 B | processes + softirq | 4.00 (2.00–6.00) |", text)
            with open(out) as f:
                j = json.load(f)
            self.assertEqual(j["rounds"], [1, 2, 3])
            self.assertEqual(j["rows"][0]["xdpsec_over_dpdk"], [1.5, 1.25, 1.5])


if __name__ == "__main__":
    unittest.main()
