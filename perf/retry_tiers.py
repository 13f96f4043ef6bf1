#!/usr/bin/python3
"""Retry topics under load: kt-host consumes MESSAGES records (--produce) with --retry-topics
TIERS, once without failures and once with --fail-every N (offsets that are multiples of N fail
in every tier, so they pass all tiers and end as dead letters), for each --orderings mode.
Measured per run:
- healthy throughput: records of the original topic that succeeded, per second, from the first
  to the last one handled (kt-host --output);
- per tier, the delay each failed record observed: from the moment its tier record was written
  to the next tier's record (or, after the last tier, its dead letter), by the records'
  timestamps, read back with confluent-kafka; median, p95 and max against the tier's delay.
Usage: perf/retry_tiers.py --kt-host build/release/apps/kt-host/kt-host
       (--bootstrap HOST:PORT | --kt-cluster build/release/apps/kt-cluster/kt-cluster)
       [--messages 200000] [--tiers 1s,5s,10s] [--fail-every 10] [--partitions 6]
       [--orderings partition,key] [--json FILE]"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def delay_ms(text):
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * UNITS[unit]
    raise ValueError(f"not a delay: {text}")


def read_topic(bootstrap, topic, partitions):
    """Every record of `topic` as (headers dict, timestamp ms)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retry-tiers-reader",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records, at_eof, idle_since = [], set(), time.time()
    while len(at_eof) < partitions and time.time() - idle_since < 10:
        m = consumer.poll(0.5)
        if m is None:
            continue
        idle_since = time.time()
        if m.error():
            at_eof.add(m.partition())
            continue
        headers = {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])}
        records.append((headers, m.timestamp()[1]))
    consumer.close()
    return records


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def one_run(args, tmp, name, fail_every, ordering):
    topic = f"retry-tiers-{name}-{int(time.time())}"
    output = os.path.join(tmp, f"{name}.jsonl")
    command = [args.kt_host, "--bootstrap", args.bootstrap, "--topic",
               f"{topic}:{args.partitions}", "--group", f"{topic}-group", "--produce",
               str(args.messages), "--retry-topics", args.tiers, "--output", output,
               "--ordering", ordering, "--max-in-flight", "64", "--log-level", "error",
               "--exit-when-idle", str(max(delay_ms(t) for t in args.tiers.split(",")) // 1000
                                       + 5)]
    if fail_every:
        command += ["--fail-every", str(fail_every)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    with open(output) as f:
        for line in f:
            r = json.loads(line)
            if r["topic"] == topic:
                times.append(r["at_ms"])
    span_s = max(1, max(times) - min(times)) / 1000
    result = {"ordering": ordering, "fail_every": fail_every, "healthy": len(times),
              "healthy_per_s": round(len(times) / span_s)}
    if fail_every:
        tiers = [delay_ms(t) for t in args.tiers.split(",")]
        written = {}  # (partition, offset) -> [tier 1 ts, tier 2 ts, ..., dead letter ts]
        for n in range(1, len(tiers) + 1):
            for headers, ts in read_topic(args.bootstrap, f"{topic}.retry.{n}", args.partitions):
                key = (headers["kt-original-partition"], headers["kt-original-offset"])
                written.setdefault(key, {})[n] = ts
        for headers, ts in read_topic(args.bootstrap, f"{topic}.dlq", args.partitions):
            key = (headers["kt-original-partition"], headers["kt-original-offset"])
            written.setdefault(key, {})[len(tiers) + 1] = ts
        result["failed"] = len(written)
        result["dead_letters"] = sum(1 for w in written.values() if len(tiers) + 1 in w)
        result["tiers"] = []
        for n, configured in enumerate(tiers, start=1):
            observed = [w[n + 1] - w[n] for w in written.values() if n in w and n + 1 in w]
            result["tiers"].append({
                "tier": n, "delay_ms": configured, "records": len(observed),
                "median_ms": statistics.median(observed) if observed else None,
                "p95_ms": percentile(observed, 95) if observed else None,
                "max_ms": max(observed) if observed else None,
                "min_ms": min(observed) if observed else None})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kt-host", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", help="real brokers")
    where.add_argument("--kt-cluster", help="start this kt-cluster (embedded cluster) instead")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--tiers", default="1s,5s,10s")
    parser.add_argument("--fail-every", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--orderings", default="partition,key")
    parser.add_argument("--json")
    args = parser.parse_args()
    cluster = None
    if args.kt_cluster:
        cluster = subprocess.Popen([args.kt_cluster], stdout=subprocess.PIPE, text=True)
        args.bootstrap = cluster.stdout.readline().split(" ", 1)[1].strip()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for ordering in args.orderings.split(","):
                for fail_every in (0, args.fail_every):
                    name = f"{ordering}-{'fail' if fail_every else 'ok'}"
                    r = one_run(args, tmp, name, fail_every, ordering)
                    print(json.dumps(r), flush=True)
                    results.append(r)
    finally:
        if cluster:
            cluster.terminate()
            cluster.wait()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"messages": args.messages, "tiers": args.tiers,
                       "fail_every": args.fail_every, "partitions": args.partitions,
                       "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
