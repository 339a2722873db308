#!/usr/bin/env python3
"""scripts/results.py on small JSON files written here: the tables come out, each followed by
the command, date and machine of its JSON, or by "Provenance not recorded"."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "results.py")
PROVENANCE = {"command": "build/edgefm eval --json out/demo/summary.json",
              "date": "2026-12-03T15:22:00Z",
              "machine": "AMD EPYC x2, 23.5 GiB, Debian GNU/Linux 12 (bookworm)",
              "version": "0.1.0 (a25e022)"}


def write(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def run(*args):
    done = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"results.py {args} failed: {done.stderr}")
    return done.stdout


class ResultsScript(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_dir = os.path.join(self.tmp.name, "demo")
        write(os.path.join(self.run_dir, "summary.json"), {
            "fm": {"accuracy": 0.912, "params": 3400000, "latency_ms_b1": 5.1},
            "edge": {"arch": "tiny-cnn", "accuracy": 0.8887, "params": 113536,
                     "latency_ms_b1": 0.14, "uploaded": 12000, "uploaded_fraction": 0.2},
            "edgefm": {"accuracy": 0.9035, "offload_ratio": 0.1453, "threshold": 0.3,
                       "l_app_ms": 14, "feasible": True, "latency_ms": 13.2,
                       "network": {"rtt_ms": 80, "bandwidth_mbps": 1, "payload_bytes": 1100}},
            "open_set": {"score": "hybrid", "splits": [
                {"split": "default", "seen": [0, 1, 2],
                 "scores": {"margin": {"auroc": 0.484, "fpr95": 0.9},
                            "routing:hybrid": {"auroc": 0.938, "fpr95": 0.3}}}]},
            "test_images": 10000, "provenance": PROVENANCE})
        rows = [{"trace": "Verizon-LTE-short", "policy": p, "accuracy": a, "latency_ms_mean": m,
                 "latency_ms_p50": m, "latency_ms_p95": m, "latency_ms_p99": m,
                 "slo_violation_rate": s, "offload_ratio": s, "fallback": 0,
                 "trace_mean_bps": 5.95e6}
                for p, a, m, s in [("cloud-only", 0.91, 91.1, 1.0), ("fixed", 0.9, 14.6, 0.145),
                                   ("edgefm", 0.897, 14.1, 0.141)]]
        write(os.path.join(self.run_dir, "experiment", "results.json"), rows)
        write(os.path.join(self.run_dir, "experiment", "setup.json"),
              {"samples": 1000, "rate": 100, "delay_ms": 40, "l_app_ms": 14.28,
               "provenance": dict(PROVENANCE, command="build/edgefm experiment --samples 1000")})
        write(os.path.join(self.run_dir, "experiment", "runs", "x-edgefm.json"), {"ignored": 1})
        # An older file without provenance.
        write(os.path.join(self.run_dir, "customize.json"),
              {"arch": "tiny-cnn", "split": "all", "uploaded": 12000, "fm_queries": 17000,
               "validation_edge_accuracy": 0.9, "validation_fm_accuracy": 0.92})
        write(os.path.join(self.run_dir, "unknown.json"), {"something": "else"})

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, text):
        self.assertIn("| FM only | 91.20 % | 100.00 % | 3 400 000 | 5.100 |", text)
        self.assertIn("| EdgeFM | 90.35 % | 14.53 % |", text)
        self.assertIn("| **routing:hybrid** | 0.938 | 0.300 |", text)
        self.assertIn("| Verizon-LTE-short (5.95 Mbit/s) | cloud-only | 91.00 % | 91.1 |", text)
        self.assertIn("| Verizon-LTE-short | 6.5x | -1.30 points | 14.10 % / 14.50 % |", text)
        self.assertIn("Command: `build/edgefm eval --json out/demo/summary.json`; "
                      "Date: 2026-12-03T15:22:00Z; Machine: AMD EPYC x2, 23.5 GiB, Debian "
                      "GNU/Linux 12 (bookworm); Version: 0.1.0 (a25e022)", text)
        self.assertIn("Command: `build/edgefm experiment --samples 1000`", text)
        self.assertRegex(text, r"Provenance not recorded \(`[^`]*customize\.json`\)")
        # Every table is followed by its provenance line before the next heading.
        for block in text.split("\n### ")[1:]:
            self.assertTrue("Command: `" in block or "Provenance not recorded" in block, block)
        self.assertNotIn("ignored", text)

    def test_a_run_folder_to_markdown(self):
        out = os.path.join(self.tmp.name, "results.md")
        run(self.run_dir, "--out", out)
        with open(out) as f:
            text = f.read()
        self.assertTrue(text.startswith("# Measured results\n"))
        self.assertIn("## Fashion-MNIST demo (`scripts/demo.sh`)", text)
        self.check(text)

    def test_collect_keeps_the_json_and_regenerates_the_same_tables(self):
        kept = os.path.join(self.tmp.name, "kept")
        run("--collect", self.run_dir, "--results-dir", kept)
        files = sorted(os.path.relpath(os.path.join(d, f), kept)
                       for d, _, fs in os.walk(kept) for f in fs)
        self.assertEqual(files, ["demo/customize.json", "demo/experiment/results.json",
                                 "demo/experiment/setup.json", "demo/summary.json"])
        text = run("--results-dir", kept)
        self.check(text)
        self.assertEqual(text, run("--results-dir", kept))  # reproducible

    def test_readme_gets_the_demo_table_between_its_markers(self):
        sys.path.insert(0, os.path.dirname(SCRIPT))
        import results
        kept = os.path.join(self.tmp.name, "kept")
        run("--collect", self.run_dir, "--results-dir", kept)
        readme = os.path.join(self.tmp.name, "README.md")
        with open(readme, "w") as f:
            f.write(f"# Title\n\n{results.README_BEGIN}\nold\n{results.README_END}\n\nmore\n")
        results.update_readme(kept, readme)
        with open(readme) as f:
            text = f.read()
        self.assertNotIn("\nold\n", text)
        self.assertIn("| EdgeFM | 90.35 % | 14.53 % |", text)
        self.assertIn("Command: `build/edgefm eval --json out/demo/summary.json`", text)
        self.assertTrue(text.endswith(f"{results.README_END}\n\nmore\n"))


if __name__ == "__main__":
    unittest.main()
