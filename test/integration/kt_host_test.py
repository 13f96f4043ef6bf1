#!/usr/bin/env python3
"""CLI test of kt-host on its embedded cluster: every trigger handles every message once, the
summary's committed offsets reach the produced count, sharing modes give the documented consumer
counts, and bad options fail clearly. Usage: kt_host_test.py <path-to-kt-host>"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

KT_HOST = sys.argv[1]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")  # real brokers; otherwise kt-host embeds a cluster
RUN = f"{os.getpid()}-{int(time.time())}"  # topics and groups are new on every run
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def run_host(tmp, sharing, idle="1"):
    output = os.path.join(tmp, f"out-{sharing}.jsonl")
    summary = os.path.join(tmp, f"summary-{sharing}.json")
    orders, audit = f"orders-{sharing}-{RUN}", f"audit-{sharing}-{RUN}"
    args = [KT_HOST, "--topic", f"{orders}:3", "--topic", f"{audit}:2", "--produce", "300",
            "--triggers", "2", "--sharing", sharing, "--group", f"kt-host-{sharing}-{RUN}",
            "--exit-when-idle", idle, "--output", output, "--summary-json", summary,
            "--log-level", "warning"]
    if BOOTSTRAP:
        args += ["--bootstrap", BOOTSTRAP]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    check(proc.returncode == 0, f"{sharing}: exit code 0 (stderr: {proc.stderr[-300:]})")
    if not BOOTSTRAP:
        check(proc.stdout.startswith("bootstrap: 127.0.0.1:"), f"{sharing}: prints the embedded bootstrap")
    seen = collections.Counter()
    with open(output) as f:
        for line in f:
            r = json.loads(line)
            seen[(r["trigger"], r["topic"], r["partition"], r["offset"])] += 1
    check(len(seen) == 4 * 300, f"{sharing}: 4 triggers x 300 messages handled ({len(seen)})")
    check(all(c == 1 for c in seen.values()), f"{sharing}: no message handled twice")
    with open(summary) as f:
        s = json.load(f)
    check(all(t["handled"] == 300 and t["failed"] == 0 for t in s["triggers"]),
          f"{sharing}: summary counts 300 handled per trigger")
    for topic in (orders, audit):
        committed = sum(s["committed"].get(topic, {}).values())
        check(committed == 300, f"{sharing}: committed offsets of {topic} sum to 300 ({committed})")
    return s


with tempfile.TemporaryDirectory() as tmp:
    check(run_host(tmp, "per_group")["consumers"] == 1, "per_group: one consumer for 4 triggers")
    # Two consumers in one group: the second join makes the embedded cluster rebalance (~5 s).
    check(run_host(tmp, "per_topic", idle="8")["consumers"] == 2, "per_topic: one consumer per topic")
    check(run_host(tmp, "off")["consumers"] == 4, "off: one consumer per trigger")

bad = subprocess.run([KT_HOST, "--sharing", "sometimes"], capture_output=True, text=True, timeout=30)
check(bad.returncode == 2 and "--sharing 'sometimes'" in bad.stderr,
      f"an invalid --sharing is refused by name ({bad.stderr.strip()})")
usage = subprocess.run([KT_HOST, "--help"], capture_output=True, text=True, timeout=30)
check(usage.returncode == 0 and all(o in usage.stdout for o in (
    "--bootstrap", "--topic", "--group", "--triggers", "--sharing", "--handler-ms", "--produce",
    "--output", "--exit-when-idle", "--summary-json")), "--help documents every option")

print(f"kt_host_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
