#!/usr/bin/env python3
"""Smoke test of kt-bench: a --smoke run (tiny sizes, scenarios overlapping) writes a JSON file in
which every scenario is present, every run consumed exactly what was produced and every figure is
positive. No timing thresholds: those belong to the benchmarks. Usage: kt_bench_test.py <kt-bench>"""
import json
import os
import subprocess
import sys
import tempfile

KT_BENCH = sys.argv[1]
SCENARIOS = ["baseline", "fanout", "latency", "hop", "isolation", "concurrency"]
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def positive(value):
    return isinstance(value, (int, float)) and value > 0


def check_baseline(b):
    check(b["raw_received"] == b["messages"], f"baseline: raw loop received {b['messages']}")
    check(b["trigger_received"] == b["messages"], f"baseline: trigger received {b['messages']}")
    check(b["rounds"] and all(positive(r["raw_msgs_per_s"]) and positive(r["trigger_msgs_per_s"])
                              for r in b["rounds"]), "baseline: positive rates")


def check_fanout(f):
    check(f["runs"] and positive(f["idle"]["threads_peak"]) and positive(f["idle"]["rss_peak_bytes"]),
          "fanout: idle baseline measured")
    for run in f["runs"]:
        name = f"fanout: {run['triggers']} triggers, sharing {run['sharing']}"
        check(run["expected"] == run["triggers"] * f["messages_per_trigger"],
              f"{name}: expects every message once per trigger")
        check(run["handled"] == run["expected"], f"{name}: handled {run['expected']} ({run['handled']})")
        consumers = 1 if run["sharing"] == "per_group" else run["triggers"]
        check(run["consumers"] == consumers, f"{name}: {consumers} consumer(s) ({run['consumers']})")
        check(all(positive(run[k]) for k in ("deliveries_per_s", "cpu_seconds", "threads_peak",
                                             "rss_peak_bytes", "connections_peak")),
              f"{name}: positive figures")
    check(f["shared_vs_separate"], "fanout: shared and separate consumers compared")


def check_latency(l):
    for side in ("raw", "trigger"):
        s = l[side]
        check(s["received"] == l["messages"] and s["samples"] == l["messages"],
              f"latency: {side} received and timed {l['messages']}")
        check(positive(s["p50_us"]) and s["p50_us"] <= s["p99_us"] <= s["p999_us"],
              f"latency: {side} percentiles positive and ordered")


def check_hop(h):
    for name, side in (("sleeping", h), ("polling", h["polling"])):
        check(side["samples"] == h["pushed"], f"hop ({name}): every pushed sample timed")
        check(positive(side["p50_us"]) and side["p50_us"] <= side["p99_us"],
              f"hop ({name}): percentiles positive and ordered")
        check(positive(side["cpu_seconds"]), f"hop ({name}): CPU seconds measured")


def check_isolation(i):
    check(i["received"] == i["messages"], f"isolation: fast trigger received {i['messages']}")
    check(i["rounds"] and all(positive(r["alone_msgs_per_s"]) and positive(r["beside_slow_msgs_per_s"])
                              for r in i["rounds"]), "isolation: positive rates")


def check_concurrency(c):
    check({r["ordering"] for r in c["runs"]} == {"key", "partition"}, "concurrency: key and partition runs")
    for run in c["runs"]:
        check(run["handled"] == run["produced"] and positive(run["msgs_per_s"]),
              f"concurrency: {run['ordering']}-ordered handled {run['produced']} ({run['handled']})")


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "bench.json")
    proc = subprocess.run([KT_BENCH, "--smoke", "--json", out], capture_output=True, text=True,
                          timeout=300)
    print(proc.stdout[-3000:])
    check(proc.returncode == 0, f"exit code 0 (stderr: {proc.stderr[-500:]})")
    if proc.returncode == 0:
        with open(out) as f:
            result = json.load(f)
        check(sorted(result["scenarios"]) == sorted(SCENARIOS), "every scenario present")
        for name in SCENARIOS:
            if name in result["scenarios"]:
                globals()[f"check_{name}"](result["scenarios"][name])
        check(result["targets"] and all(isinstance(t["measured"], (int, float)) for t in result["targets"]),
              "targets listed with measured values")
        check(os.path.exists(os.path.join(tmp, "bench.dat")), "fan-out plot data written")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
