#!/usr/bin/env python3
"""Writes the Markdown tables of measured results from the JSON files that EdgeFM's runs write.

Every table is followed by the command, date and machine from the `provenance` member of the
JSON it was read from (written by `common/provenance.h`); a JSON without one is marked
"provenance not recorded". Nothing is typed in by hand.

  scripts/results.py out/demo --out out/demo/results.md   # one run's folder -> a Markdown file
  scripts/results.py --collect out/demo out/demo-keywords  # keep their JSON in docs/results/
  scripts/results.py --publish                              # docs/results/ -> docs/results.md

An input is a folder (searched recursively; the `runs/` and `selection/` folders of the live
runs are skipped) or a JSON file. Without inputs the results folder (`docs/results/`, one
subfolder per source) is read. `--collect` copies the JSON files that this script knows from
each input folder into `docs/results/<folder name>/`, replacing what was there for that name,
so that docs/results.md can be regenerated from a plain clone. Python 3 standard library only.
"""
import argparse
import json
import math
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "docs", "results")
PUBLISHED = os.path.join(ROOT, "docs", "results.md")
SKIPPED_FOLDERS = {"runs", "selection"}
TITLES = {
    "demo": "Fashion-MNIST demo (`scripts/demo.sh`)",
    "demo-keywords": "Keywords, synthesized speech (`DEMO_TASK=keywords scripts/demo.sh`)",
    "bench": "Benchmarks (`bench/`)",
    "clip-shaped": "A real FM's path: the CLIP-shaped stand-in (`edgefm fm clip-shaped`)",
    "device-bench": "Cloud service with the reference FM (`scripts/device-bench.sh`)",
    "cloud-under-load": "The cloud service under load (`bench/load_bench`, docs/cloud.md)",
    "fleet": "A fleet of devices against one cloud service (`edgefm fleet`, docs/fleet.md)",
    "endpoint": "The edge's local endpoint (`bench/endpoint_bench`, docs/edge.md)",
}


# ---- formatting -------------------------------------------------------------------------

def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pct(v):
    return f"{100 * v:.2f} %" if is_number(v) else "-"


def num(v, digits=2):
    return f"{v:.{digits}f}" if is_number(v) else "-"


def count(v):
    return f"{int(v):,}".replace(",", " ") if is_number(v) else "-"


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text):
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def provenance_line(prov, source):
    where = f"(`{source}`)"
    if not isinstance(prov, dict) or not prov:
        return f"Provenance not recorded {where}."
    parts = []
    for key in ("command", "date", "machine", "version"):
        value = prov.get(key)
        if value:
            parts.append(f"{key.capitalize()}: {code(value) if key == 'command' else value}")
    return "; ".join(parts) + f" {where}."


# ---- what each kind of JSON shows -------------------------------------------------------
# Each renderer returns a list of (heading, Markdown table, extra paragraph or "").

def render_eval(d):
    fm, edge, e = d.get("fm", {}), d.get("edge", {}), d.get("edgefm", {})
    out = []
    rows = [
        ["FM only", pct(fm.get("accuracy")), pct(1.0), count(fm.get("params")),
         num(fm.get("latency_ms_b1"), 3)],
        [f"edge only ({edge.get('arch', '?')})", pct(edge.get("accuracy")), pct(0.0),
         count(edge.get("params")), num(edge.get("latency_ms_b1"), 3)],
        ["EdgeFM", pct(e.get("accuracy")), pct(e.get("offload_ratio")), "",
         num(e.get("latency_ms"), 3)],
    ]
    net = e.get("network", {})
    note = (f"Test samples: {count(d.get('test_images'))}. EdgeFM: the threshold "
            f"{num(e.get('threshold'), 4)} searched on the calibration profile for L_app "
            f"{num(e.get('l_app_ms'))} ms (feasible: {str(e.get('feasible')).lower()}) on an "
            f"assumed network of RTT {num(net.get('rtt_ms'), 0)} ms, "
            f"{num(net.get('bandwidth_mbps'))} Mbit/s and {count(net.get('payload_bytes'))} bytes "
            f"per query; its latency is the latency model at the measured offload. The edge "
            f"model was customized from {count(edge.get('uploaded'))} uploads "
            f"({pct(edge.get('uploaded_fraction'))} of the training samples).")
    out.append(("Offline evaluation",
                table(["", "accuracy", "offload", "parameters", "latency (ms)"], rows), note))
    open_set = d.get("open_set", {})
    splits = open_set.get("splits", [])
    if splits:
        routing = open_set.get("score", "")
        names = []
        for s in splits:
            names += [n for n in s.get("scores", {}) if n not in names]
        headers = ["score"] + [f"AUROC, split {s.get('split')}" for s in splits] + \
                  [f"FPR@95TPR, split {s.get('split')}" for s in splits]
        rows = []
        for n in names:
            label = f"**{n}**" if n == f"routing:{routing}" else n
            rows.append([label] +
                        [num(s["scores"].get(n, {}).get("auroc"), 3) for s in splits] +
                        [num(s["scores"].get(n, {}).get("fpr95"), 3) for s in splits])
        seen = "; ".join(f"{s.get('split')}: {s.get('seen')}" for s in splits)
        note = (f"Seen classes ({seen}): their test samples are the positives. "
                f"`routing:{routing}` is the routing "
                "score as shipped in the student artifact; `untrained:*` is the same score on "
                "an untrained student of the same architecture.")
        out.append(("Open set", table(headers, rows), note))
    return out


def render_fm_train(d):
    rows = [[count(d.get("epochs")), count(d.get("parameters")), pct(d.get("test_accuracy")),
             num(d.get("train_seconds"), 0), num(d.get("images_per_second"), 0),
             num(d.get("final_loss"), 4)]]
    return [("Reference FM training",
             table(["epochs", "parameters", "zero-shot test accuracy", "seconds", "samples/s",
                    "final loss"], rows), "")]


def render_fm_eval(d):
    rows = [[d.get("version", ""), count(d.get("params")), pct(d.get("accuracy")),
             num(d.get("latency_ms_b1"), 3), count(d.get("test_images"))]]
    return [("FM zero-shot evaluation",
             table(["FM", "parameters", "zero-shot accuracy", "batch-1 ms", "test samples"], rows),
             "")]


def render_customize(d):
    rows = [[d.get("arch", ""), d.get("split", ""), count(d.get("uploaded")),
             pct(d.get("uploaded_fraction")), count(d.get("fm_queries")),
             pct(d.get("validation_edge_accuracy")), pct(d.get("validation_fm_accuracy")),
             num(d.get("seconds"), 0)]]
    return [(f"Customization ({d.get('arch', '')}, split {d.get('split', '')})",
             table(["arch", "split", "uploads", "of the training samples", "FM queries",
                    "validation accuracy, edge", "validation accuracy, FM", "seconds"], rows),
             "")]


def render_models(d):
    rows = [[m.get("arch", ""), count(m.get("params")), count(m.get("multiply_adds")),
             num(m.get("latency_ms_b1"), 3), num(m.get("latency_ms_b1_with_frontend"), 3),
             num(m.get("latency_ms_b64"), 2)] for m in d.get("models", [])]
    note = f"Front end (the raw sample's preprocessing): {num(d.get('frontend_ms'), 3)} ms."
    return [("Model pool", table(["model", "parameters", "multiply-adds", "batch-1 ms",
                                  "batch-1 ms with front end", "batch-64 ms"], rows), note)]


def render_profile(d):
    rows = [[a.get("arch", ""), num(a.get("latency_ms"), 3), num(a.get("peak_memory_mb"), 1)]
            for a in d.get("architectures", [])]
    return [(f"Device profile ({d.get('device', '')})",
             table(["arch", "batch-1 ms", "peak memory (MiB)"], rows), "")]


def render_experiment(rows, setup):
    body = []
    by_trace = {}
    for r in rows:
        first = r.get("trace", "") not in by_trace
        by_trace.setdefault(r.get("trace", ""), {})[r.get("policy", "")] = r
        uplink = r.get("trace_mean_bps")
        trace = r.get("trace", "") if first else ""
        if first and is_number(uplink):
            trace += f" ({uplink / 1e6:.2f} Mbit/s)"
        body.append([trace, r.get("policy", ""), pct(r.get("accuracy")),
                     num(r.get("latency_ms_mean"), 1), num(r.get("latency_ms_p50"), 1),
                     num(r.get("latency_ms_p95"), 1), num(r.get("latency_ms_p99"), 1),
                     pct(r.get("slo_violation_rate")), pct(r.get("offload_ratio")),
                     count(r.get("fallback"))])
    note = ""
    if setup:
        note = (f"{count(setup.get('samples'))} samples per run at {num(setup.get('rate'), 0)} "
                f"samples/s, one-way delay {num(setup.get('delay_ms'), 0)} ms, L_app "
                f"{num(setup.get('l_app_ms'))} ms "
                f"({'given' if setup.get('l_app_given') else 'derived from the calibration profile'}), "
                f"measured cloud service time {num(setup.get('t_cloud_ms_measured'), 2)} ms. "
                "An answer later than L_app is an SLO violation; `fallback` counts answers the "
                "edge gave itself after the cloud timed out.")
    out = [("Live experiment",
            table(["trace (mean uplink)", "policy", "accuracy", "mean ms", "p50 ms", "p95 ms",
                   "p99 ms", "SLO viol.", "offload", "fallback"], body), note)]
    ratios = []
    for trace, p in by_trace.items():
        e, c, f = p.get("edgefm"), p.get("cloud-only"), p.get("fixed")
        if not e or not c:
            continue
        ratio = (c["latency_ms_mean"] / e["latency_ms_mean"]
                 if is_number(c.get("latency_ms_mean")) and e.get("latency_ms_mean") else None)
        diff = (100 * (e["accuracy"] - c["accuracy"])
                if is_number(e.get("accuracy")) and is_number(c.get("accuracy")) else None)
        ratios.append([trace, f"{ratio:.1f}x" if ratio else "-",
                       f"{diff:+.2f} points" if diff is not None else "-",
                       f"{pct(e.get('slo_violation_rate'))} / "
                       f"{pct(f.get('slo_violation_rate')) if f else '-'}"])
    if ratios:
        out.append(("Live experiment: EdgeFM against the baselines",
                    table(["trace", "mean latency, cloud-only / EdgeFM",
                           "EdgeFM accuracy − cloud-only", "SLO violations EdgeFM / fixed"],
                          ratios), ""))
    return out


def render_scenario(d):
    out = []
    timeline = d.get("timeline", [])
    if timeline:
        rows = [[num(r.get("t_s"), 0), count(r.get("samples")), pct(r.get("edge_share")),
                 pct(r.get("accuracy")), pct(r.get("unseen_share")), count(r.get("uploads")),
                 r.get("model_version", "")] for r in timeline]
        split = timeline[0].get("split", "")
        out.append((f"Open-set scenario: timeline ({split} split)",
                    table(["t (s)", "samples", "edge share", "accuracy", "unseen share",
                           "uploads", "model"], rows), ""))
    detection = d.get("detection", [])
    if detection:
        def value(v):
            return "-" if v is None else str(v)
        rows = []
        for r in detection:
            by = r.get("samples_to_detection_by", {})
            rows.append([r.get("split", ""), r.get("mode", ""),
                         value(r.get("first_unseen_sample")),
                         value(r.get("detected_at_sample")) if r.get("detected") else "-",
                         value(r.get("samples_to_detection")),
                         r.get("trigger", "-") + (f" ({r['drift_source']})"
                                                  if r.get("drift_source") else ""),
                         value(by.get("audits")), value(by.get("offload")),
                         value(r.get("audits"))])
        out.append(("Open-set scenario: detection of the shift",
                    table(["split", "mode", "first unseen sample", "detected at",
                           "samples to detection", "trigger", "by audits", "by offload",
                           "audits"], rows), ""))
    architecture = d.get("architecture", [])
    if architecture:
        rows = [[a.get("split", ""),
                 num(a.get("budget_ms"), 3) if is_number(a.get("budget_ms")) else "none",
                 a.get("arch", "")] for a in architecture]
        out.append(("Open-set scenario: architecture choice",
                    table(["split", "latency budget (ms)", "chosen"], rows), ""))
    selection = d.get("selection", [])
    if selection:
        rows = [[r.get("strategy", ""), count(r.get("uploaded")), pct(r.get("edge_accuracy")),
                 pct(r.get("unseen_share"))] for r in selection]
        out.append(("Open-set scenario: selection strategies (offline)",
                    table(["strategy", "uploaded", "edge accuracy",
                           "unseen-class share of uploads"], rows),
                    "`label_oracle`, where present, is not a strategy: it draws its uploads from "
                    "the unseen-class samples by their true labels."))
    targets = d.get("targets", {})
    if targets:
        rows = []
        for key, v in targets.items():
            if isinstance(v, (dict, list)):
                continue
            if isinstance(v, bool):
                shown = "yes" if v else "no"
            elif is_number(v) and ("share" in key or "accuracy" in key or "gain" in key):
                shown = pct(v)
            elif v is None:
                shown = "-"
            else:
                shown = str(v)
            rows.append([f"`{key}`", shown])
        out.append(("Open-set scenario: targets", table(["target", "value"], rows),
                    "Fields as in `docs/scenario.md`, \"Outputs\"."))
    return out


def render_cloud_bench(d):
    rows = [[r.get("mode", ""), count(r.get("max_batch")), count(r.get("clients")),
             num(r.get("requests_per_s"), 1), num(r.get("latency_ms_p50"), 2),
             num(r.get("latency_ms_p99"), 2), num(r.get("mean_batch_rows"), 2)]
            for r in d.get("rows", [])]
    return [(f"Cloud service ({d.get('model', '')}, {d.get('device', '')})",
             table(["mode", "max batch", "clients", "req/s", "p50 ms", "p99 ms", "mean batch"],
                   rows), "")]


def render_device_bench(d):
    rows = [[count(r.get("max_batch")), count(r.get("clients")), num(r.get("requests_per_s"), 1),
             num(r.get("latency_ms_p50"), 2), num(r.get("latency_ms_p95"), 2),
             num(r.get("latency_ms_p99"), 2), num(r.get("mean_batch_rows"), 2),
             f"{num(r.get('speedup_vs_max_batch_1'))}x"] for r in d.get("rows", [])]
    return [(f"Cloud service with the FM on {d.get('device', '')}",
             table(["max batch", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "mean batch",
                    "vs max batch 1"], rows), "")]


def render_models_bench(d):
    rows = [[r.get("model", ""), count(r.get("batch")), num(r.get("mean_ms"), 3),
             num(r.get("stdev_ms"), 3), num(r.get("p99_ms"), 3)] for r in d.get("rows", [])]
    return [("Forward latency (`models_bench`)",
             table(["model", "batch", "mean ms", "stdev ms", "p99 ms"], rows), "")]


def render_google_benchmark(d):
    rows = [[f"`{b.get('name', '')}`", num(b.get("real_time"), 1), b.get("time_unit", ""),
             count(b.get("iterations"))] for b in d.get("benchmarks", [])]
    return [("Hot path (`route_bench`)",
             table(["benchmark", "time", "unit", "iterations"], rows), "")]


def render_load_bench(d):
    def steps(rows, first):
        return [[first(r), count(r.get("requests")), count(r.get("errors")),
                 num(r.get("throughput_infer_per_s"), 1), num(r.get("latency_ms_p50"), 1),
                 num(r.get("latency_ms_p90"), 1), num(r.get("latency_ms_p95"), 1),
                 num(r.get("latency_ms_p99"), 1)] for r in rows]
    head = ["requests", "errors", "infer/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms"]
    out = []
    sweep = d.get("concurrency_sweep") or []
    if sweep:
        out.append(("Cloud service under load: concurrency sweep",
                    table(["clients"] + head, steps(sweep, lambda r: count(r.get("concurrency")))),
                    f"Each client sends its next request when the previous one is answered; "
                    f"server: {code(d.get('server', ''))}."))
    rate = d.get("request_rate") or []
    if rate:
        out.append(("Cloud service under load: fixed request rate",
                    table(["requests/s"] + head, steps(rate, lambda r: num(r.get("rate"), 0))),
                    f"Open loop, {d.get('arrivals', '')} arrivals."))
    added = (d.get("batching_overhead") or {}).get("added") or []
    if added:
        rows = [[count(a.get("max_queue_delay_us")), num(a.get("p50_added_ms"), 2),
                 num(a.get("mean_added_ms"), 2), num(a.get("p99_added_ms"), 2)] for a in added]
        out.append(("Cloud service under load: batching overhead at one client",
                    table(["max queue delay (us)", "p50 added ms", "mean added ms", "p99 added ms"],
                          rows), "Latency added over the same server with batching off (max batch 1)."))
    slow = d.get("slow_clients")
    if slow:
        rows = [[name, count(slow[name].get("requests")), count(slow[name].get("errors")),
                 num(slow[name].get("latency_ms_p50"), 1), num(slow[name].get("latency_ms_p99"), 1),
                 num(slow[name].get("latency_ms_max"), 1)] for name in ("health", "infer")
                if isinstance(slow.get(name), dict)]
        out.append((f"Cloud service under load: {count(slow.get('connections_opened'))} slow "
                    f"connections open",
                    table(["probe", "requests", "errors", "p50 ms", "p99 ms", "max ms"], rows),
                    f"Each slow connection sends a header byte every "
                    f"{num(slow.get('byte_interval_s'), 1)} s; within {num(slow.get('target_ms'), 0)} ms: "
                    f"{'yes' if slow.get('all_within_target') else 'no'}."))
    return out


def google_benchmark_provenance(d):
    context = d.get("context", {})
    prov = {k[len("provenance_"):]: v for k, v in context.items() if k.startswith("provenance_")}
    return prov or None


def render_fleet(d):
    jobs = (d.get("setup") or {}).get("jobs") if isinstance(d.get("setup"), dict) else None
    head = ["devices", "answers", "lost", "cloud req/s", "cloud p99 ms", "call p99 ms",
            "worst device p99 ms", "offload", "SLO violations", "accuracy"]
    row = [count(d.get("devices")), count(d.get("answers")), count(d.get("lost_answers")),
           num(d.get("cloud_requests_per_s"), 1), num(d.get("cloud_p99_ms"), 1),
           num(d.get("cloud_call_p99_ms"), 1), num(d.get("device_p99_max_ms"), 1),
           pct(d.get("offload_ratio")), pct(d.get("slo_violation_rate")), pct(d.get("accuracy"))]
    title = "Fleet" + (f" with {count(jobs)} customization jobs" if jobs else "")
    return [(title, table(head, [row]),
             "The cloud's p99 is its own time per request; the call p99 is as the devices saw "
             "it, through their links.")]


def render_endpoint_bench(d):
    rows = [[r.get("mode", ""), count(r.get("samples")), num(r.get("p50_ms"), 3),
             num(r.get("p90_ms"), 3), num(r.get("p99_ms"), 3),
             num(r.get("p50_overhead_ms"), 3) if r.get("p50_overhead_ms") else "-"]
            for r in d.get("rows", [])]
    return [("Local endpoint overhead at batch 1",
             table(["mode", "samples", "p50 ms", "p90 ms", "p99 ms", "p50 overhead ms"], rows),
             f"Student {code(d.get('arch', ''))}, edge-only; target: under "
             f"{num(d.get('target_p50_overhead_ms'), 1)} ms.")]


# kind: (recognizer, renderer, provenance reader)
KINDS = [
    ("eval", lambda d: isinstance(d, dict) and {"fm", "edge", "edgefm"} <= d.keys(),
     render_eval),
    ("fm_train", lambda d: isinstance(d, dict) and {"train_seconds", "test_accuracy"} <= d.keys(),
     render_fm_train),
    ("fm_eval", lambda d: isinstance(d, dict) and
     {"version", "accuracy", "latency_ms_b1", "test_images"} <= d.keys(), render_fm_eval),
    ("customize", lambda d: isinstance(d, dict) and
     {"uploaded", "fm_queries", "validation_edge_accuracy"} <= d.keys(), render_customize),
    ("models", lambda d: isinstance(d, dict) and isinstance(d.get("models"), list) and
     "spec" in d, render_models),
    ("profile", lambda d: isinstance(d, dict) and isinstance(d.get("architectures"), list),
     render_profile),
    ("scenario", lambda d: isinstance(d, dict) and {"timeline", "detection"} <= d.keys(),
     render_scenario),
    ("cloud_bench", lambda d: isinstance(d, dict) and d.get("benchmark") == "cloud_bench",
     render_cloud_bench),
    ("device_bench", lambda d: isinstance(d, dict) and isinstance(d.get("runs"), list) and
     isinstance(d.get("rows"), list) and "device" in d, render_device_bench),
    ("models_bench", lambda d: isinstance(d, dict) and d.get("bench") == "models",
     render_models_bench),
    ("google_benchmark", lambda d: isinstance(d, dict) and "benchmarks" in d and "context" in d,
     render_google_benchmark),
    ("load_bench", lambda d: isinstance(d, dict) and d.get("benchmark") == "load_bench",
     render_load_bench),
    ("fleet", lambda d: isinstance(d, dict) and {"devices", "lost_answers", "cloud_p99_ms"} <= d.keys(),
     render_fleet),
    ("endpoint_bench", lambda d: isinstance(d, dict) and "target_p50_overhead_ms" in d,
     render_endpoint_bench),
]
ORDER = ["eval", "fm_train", "fm_eval", "customize", "models", "profile", "experiment",
         "scenario", "cloud_bench", "load_bench", "fleet", "endpoint_bench", "device_bench",
         "models_bench", "google_benchmark"]


def is_experiment(d):
    return (isinstance(d, list) and d and all(isinstance(r, dict) for r in d) and
            {"trace", "policy"} <= d[0].keys())


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"results: skipping {path}: {e}", file=sys.stderr)
        return None


def classify(path):
    """(kind, data) for a JSON file this script knows, else None."""
    d = load(path)
    if d is None:
        return None
    if is_experiment(d):
        return "experiment", d
    for kind, recognizes, _ in KINDS:
        if recognizes(d):
            return kind, d
    return None


def json_files(folder):
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(x for x in dirs if x not in SKIPPED_FOLDERS)
        found += [os.path.join(here, f) for f in sorted(files) if f.endswith(".json")]
    return found


def known_files(folder):
    """The JSON files of a folder that this script reads, with the experiments' setup.json."""
    keep = []
    for path in json_files(folder):
        c = classify(path)
        if c is None:
            continue
        keep.append(path)
        setup = os.path.join(os.path.dirname(path), "setup.json")
        if c[0] == "experiment" and os.path.exists(setup):
            keep.append(setup)
    return keep


def entries(path):
    """[(kind, data, provenance, file)] for a folder or a file."""
    files = json_files(path) if os.path.isdir(path) else [path]
    out = []
    for f in files:
        c = classify(f)
        if c is None:
            continue
        kind, d = c
        if kind == "experiment":
            setup_path = os.path.join(os.path.dirname(f), "setup.json")
            setup = load(setup_path) if os.path.exists(setup_path) else None
            prov = setup.get("provenance") if isinstance(setup, dict) else None
            out.append((kind, (d, setup), prov, f))
        elif kind == "google_benchmark":
            out.append((kind, d, google_benchmark_provenance(d), f))
        elif kind == "load_bench" and not d.get("provenance") and d.get("command"):
            m = d.get("machine") if isinstance(d.get("machine"), dict) else {}
            machine = (f"{m.get('cpu', '')} x{m.get('cores', '')}, load average "
                       f"{num(m.get('load_average_1m'), 1)} when it started")
            out.append((kind, d, {"command": d["command"], "date": m.get("date"),
                                  "machine": machine}, f))
        elif kind == "device_bench":
            prov = d.get("provenance") or next(
                (r.get("provenance") for r in d.get("runs", []) if isinstance(r, dict)), None)
            out.append((kind, d, prov, f))
        else:
            out.append((kind, d, d.get("provenance"), f))
    out.sort(key=lambda e: (ORDER.index(e[0]), e[3]))
    return out


def render(kind, data):
    if kind == "experiment":
        return render_experiment(*data)
    return next(r for k, _, r in KINDS if k == kind)(data)


def relative(path, base=ROOT):
    """The path as a reader of the repository finds it: from its root when inside it."""
    full = os.path.abspath(path)
    return os.path.relpath(full, base) if full.startswith(base + os.sep) else path


def section(name, path):
    items = entries(path)
    if not items:
        return ""
    lines = [f"## {TITLES.get(name, name)}", ""]
    for kind, data, prov, f in items:
        for heading, tbl, note in render(kind, data):
            lines += [f"### {heading}", "", tbl, ""]
            if note:
                lines += [note, ""]
            lines += [provenance_line(prov, relative(f)), ""]
    return "\n".join(lines)


def document(sources):
    parts = ["# Measured results", "",
             "Generated by `scripts/results.py` from the JSON files that the runs wrote; each "
             "table names the command, date and machine recorded in its JSON. Regenerate with "
             "`scripts/results.py --publish` (from `docs/results/`); do not edit by hand. What "
             "the figures mean, and what they do not show, is explained in the page of each "
             "part (`docs/eval.md`, `docs/experiment.md`, `docs/scenario.md`, "
             "`docs/cloud.md`, `docs/device-bench.md`, `docs/data.md`).", ""]
    for name, path in sources:
        text = section(name, path)
        if text:
            parts.append(text)
    return "\n".join(parts).rstrip() + "\n"


def collect(inputs, results_dir):
    for path in inputs:
        path = path.rstrip("/")
        if os.path.isdir(path):
            name = os.path.basename(os.path.abspath(path))
            files = known_files(path)
            target = os.path.join(results_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            # The accuracy-offload curve goes with the demo's summary (README shows it).
            pictures = [os.path.join(path, "curve.png")] if os.path.exists(
                os.path.join(path, "curve.png")) else []
            for f in files + pictures:
                dest = os.path.join(target, os.path.relpath(f, path))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(f, dest)
            print(f"results: kept {len(files)} JSON files of {path} in {relative(target)}",
                  file=sys.stderr)
        elif os.path.isfile(path):
            name = os.path.basename(os.path.dirname(os.path.abspath(path)))
            os.makedirs(os.path.join(results_dir, name), exist_ok=True)
            shutil.copyfile(path, os.path.join(results_dir, name, os.path.basename(path)))
        else:
            raise SystemExit(f"results: expected a folder or a JSON file, got '{path}'")


README_BEGIN = "<!-- results:demo (generated by scripts/results.py --publish) -->"
README_END = "<!-- /results:demo -->"


def readme_block(results_dir):
    """README's short table and picture, from the kept Fashion-MNIST demo; None without it."""
    summary = os.path.join(results_dir, "demo", "summary.json")
    d = load(summary) if os.path.exists(summary) else None
    if not isinstance(d, dict) or "edgefm" not in d:
        return None
    fm, edge, e = d.get("fm", {}), d.get("edge", {}), d.get("edgefm", {})
    rows = [["FM only (the cloud)", pct(fm.get("accuracy")), pct(1.0)],
            [f"edge only ({edge.get('arch', '?')})", pct(edge.get("accuracy")), pct(0.0)],
            ["EdgeFM", pct(e.get("accuracy")), pct(e.get("offload_ratio"))]]
    lines = [README_BEGIN, "",
             table(["Fashion-MNIST test set", "accuracy", "sent to the cloud"], rows), "",
             provenance_line(d.get("provenance"), relative(summary))]
    curve = os.path.join(results_dir, "demo", "curve.png")
    if os.path.exists(curve):
        lines += ["", f"![EdgeFM's accuracy against the share sent to the cloud]({relative(curve)})"]
    return "\n".join(lines + ["", README_END])


def update_readme(results_dir, readme):
    block = readme_block(results_dir)
    if block is None or not os.path.exists(readme):
        return
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        return
    text = text[:begin] + block + text[end + len(README_END):]
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"results: updated the demo table in {relative(readme)}", file=sys.stderr)


def sources_of(folder):
    """One source per subfolder of a results folder; loose JSON files form one more."""
    known = list(TITLES)
    names = sorted((d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))),
                   key=lambda d: (known.index(d) if d in known else len(known), d))
    out = [(d, os.path.join(folder, d)) for d in names]
    loose = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".json")]
    return out + [("results", f) for f in loose]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("inputs", nargs="*", help="result folders or JSON files")
    p.add_argument("--out", help="Markdown file to write (default: standard output)")
    p.add_argument("--collect", action="store_true",
                   help="copy the inputs' JSON into the results folder, then read that folder")
    p.add_argument("--publish", action="store_true",
                   help="write docs/results.md (from the results folder unless inputs are given "
                        "without --collect)")
    p.add_argument("--results-dir", default=RESULTS_DIR,
                   help="folder of kept JSON, one subfolder per source (default: docs/results)")
    a = p.parse_args(argv)
    if a.collect:
        if not a.inputs:
            p.error("--collect needs at least one input")
        collect(a.inputs, a.results_dir)
    if a.inputs and not a.collect:
        sources = []
        for path in a.inputs:
            path = path.rstrip("/")
            if not os.path.exists(path):
                p.error(f"no such file or folder: {path}")
            name = os.path.basename(os.path.abspath(path if os.path.isdir(path)
                                                    else os.path.dirname(path)))
            sources.append((name, path))
    else:
        if not os.path.isdir(a.results_dir):
            p.error(f"no results folder {a.results_dir}")
        sources = sources_of(a.results_dir)
    out = PUBLISHED if a.publish else a.out
    text = document(sources)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
        print(f"results: wrote {out}", file=sys.stderr)
    if a.publish:
        update_readme(a.results_dir, os.path.join(ROOT, "README.md"))
    elif not a.collect:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
