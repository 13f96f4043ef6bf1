#!/usr/bin/python3
"""Duplicates after kill -9, side by side with and without completion maps (issue 20's scenario):
for each mode, one kt-host at a time over a topic of MESSAGES records (6 partitions, handlers
awaiting --handler-ms), killed -9 KILLS times at random moments and restarted, then a last run
drains what is left. Counts from the --output files: records handled more than once
(duplicates), records never handled (missing), and what each kill redid.
Usage: perf/crash_cycles.py --kt-host build/release/apps/kt-host/kt-host --bootstrap HOST:PORT
       [--messages 60000] [--kills 4] [--handler-ms 1] [--seed N] [--modes on,off]"""
import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def records(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue  # the line a kill tore
            out.append((r["partition"], r["offset"]))
    return out


def produce(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=f"key-{i % 1000}", value=b"x" * 100)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        sys.exit("produce: not all delivered")


def one_mode(a, mode, tmp, rng):
    topic = f"crash-cycles-{mode}-{os.getpid()}-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    produce(a.bootstrap, topic, a.messages)
    base = [a.kt_host, "--bootstrap", a.bootstrap, "--topic", f"{topic}:6", "--group", topic,
            "--handler-ms", str(a.handler_ms), "--completion-map", mode, "--log-level", "error",
            "--property", "session.timeout.ms=6000"]
    outputs = []
    for run in range(a.kills + 1):
        output = os.path.join(tmp, f"{mode}-{run}.jsonl")
        outputs.append(output)
        last = run == a.kills
        proc = subprocess.Popen(base + ["--output", output] +
                                (["--exit-when-idle", "3"] if last else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if last:
            proc.wait(300)
            break
        deadline = time.time() + 60
        while not records(output) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = collections.Counter(r for path in outputs for r in records(path))
    per_kill = []
    for run in range(a.kills):
        later = set(r for path in outputs[run + 1:] for r in records(path))
        per_kill.append(sum(1 for r in set(records(outputs[run])) if r in later))
    return {"mode": mode, "messages": a.messages, "kills": a.kills,
            "handled": sum(seen.values()), "distinct": len(seen),
            "duplicates": sum(n - 1 for n in seen.values()),
            "missing": a.messages - len(seen), "redone_per_kill": per_kill}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kt-host", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--messages", type=int, default=60000)
    p.add_argument("--kills", type=int, default=4)
    p.add_argument("--handler-ms", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--modes", default="on,off")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes.split(","):
            print(json.dumps(one_mode(a, mode, tmp, random.Random(a.seed))), flush=True)


if __name__ == "__main__":
    main()
