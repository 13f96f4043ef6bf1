#!/usr/bin/python3
"""Rebalance times under the classic and the consumer (KIP-848) group protocol, side by side.
Each run: member A consumes a topic of PARTITIONS partitions while records keep arriving
(--rate per second); member B joins, later leaves gracefully (SIGTERM). Measured per run:
- join: B's spawn until B handles its first record (process start included);
- revoke: A's revocation when B joins, callback until acknowledged (drain, listeners, commit),
  from A's log line "revoked N partition(s); drained and committed in X ms";
- leave: B's own revocation as it leaves (the same log line);
- takeover: B's SIGTERM until A handles a record of a partition B held.
Prints the median (and range) of each per protocol, and writes them as JSON with --json.
Usage: perf/rebalance_times.py --kt-host build/release/apps/kt-host/kt-host
       (--bootstrap HOST:PORT | --kt-cluster build/release/apps/kt-cluster/kt-cluster)
       [--runs 5] [--protocols classic,consumer] [--partitions 6] [--rate 1000]
       [--handler-ms 0] [--json FILE]
Classic members get session.timeout.ms=6000; consumer-protocol members get what the broker sets
(scripts/kafka-local.sh, and the kt-cluster started here: 6 s session, 1 s heartbeat)."""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

REVOKED = re.compile(r"revoked (\d+) partition\(s\); drained and .* in (\d+) ms")


def handled(path):
    """(partition, at_ms) of each complete line of a kt-host --output file."""
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    r = json.loads(line)
                    out.append((r["partition"], r["at_ms"]))
    return out


def revocations(err_path):
    """Milliseconds of each revocation kt-host logged, in order."""
    with open(err_path) as f:
        return [int(m.group(2)) for m in REVOKED.finditer(f.read())]


def wait_for(condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.01)
    return None


class member:
    def __init__(self, args, tmp, name, topic, group, protocol):
        self.output = os.path.join(tmp, f"{name}.jsonl")
        self.err = os.path.join(tmp, f"{name}.err")
        group_args = (["--group-protocol", "consumer"] if protocol == "consumer"
                      else ["--property", "session.timeout.ms=6000"])
        with open(self.err, "w") as err:
            self.spawned = time.time()
            self.proc = subprocess.Popen(
                [args.kt_host, "--bootstrap", args.bootstrap, "--topic",
                 f"{topic}:{args.partitions}", "--group", group, "--output", self.output,
                 "--log-level", "info", "--handler-ms", str(args.handler_ms), *group_args],
                stdout=subprocess.DEVNULL, stderr=err)

    def first_record_ms(self, timeout=60):
        first = wait_for(lambda: handled(self.output), timeout)
        return None if not first else first[0][1] - self.spawned * 1000

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


RUN = f"{os.getpid()}-{int(time.time())}"


def topic_of(protocol, run):
    return f"rebalance-{protocol}-{run}-{RUN}"


def one_run(args, protocol, run, tmp):
    topic = group = topic_of(protocol, run)
    if not args.kt_cluster:  # kt-cluster creates them (the mock answers no CreateTopics)
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    stop = threading.Event()

    def produce():
        producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})
        i, started = 0, time.time()
        while not stop.is_set():
            producer.produce(topic, key=f"key-{i % 100}", value=f"value-{i}")
            producer.poll(0)
            i += 1
            delay = started + i / args.rate - time.time()
            if delay > 0:
                time.sleep(delay)
        producer.flush(30)

    producing = threading.Thread(target=produce)
    producing.start()
    a = member(args, tmp, f"{protocol}-{run}-a", topic, group, protocol)
    b = None
    try:
        if a.first_record_ms() is None:
            raise RuntimeError("A handled nothing within 60 s")
        time.sleep(1)
        b = member(args, tmp, f"{protocol}-{run}-b", topic, group, protocol)
        join = b.first_record_ms()
        if join is None:
            raise RuntimeError("B handled nothing within 60 s")
        # Let the group settle (a classic cooperative rebalance takes two rounds).
        time.sleep(2)
        held_by_b = {p for p, at in handled(b.output)}
        revoke = revocations(a.err)
        left_at = time.time()
        b.stop()
        leave = revocations(b.err)
        takeover = wait_for(lambda: next((at for p, at in handled(a.output)
                                          if p in held_by_b and at > left_at * 1000), None), 60)
        return {"join_ms": round(join), "revoke_ms": revoke[0] if revoke else None,
                "leave_ms": leave[-1] if leave else None,
                "takeover_ms": None if takeover is None else round(takeover - left_at * 1000)}
    finally:
        for m in (a, b):
            if m:
                m.stop()
        stop.set()
        producing.join()


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} ({min(values)}-{max(values)})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kt-host", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", help="real brokers")
    where.add_argument("--kt-cluster", help="start this kt-cluster (embedded cluster) instead")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--protocols", default="classic,consumer")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--handler-ms", type=int, default=0,
                        help="each handler's wait: what a revocation drains")
    parser.add_argument("--json")
    args = parser.parse_args()
    protocols = args.protocols.split(",")
    cluster = None
    if args.kt_cluster:
        cluster = subprocess.Popen(
            [args.kt_cluster, "--consumer-session-timeout-ms", "6000",
             "--consumer-heartbeat-interval-ms", "1000",
             *[f"--topic={topic_of(p, r)}:{args.partitions}" for p in protocols
               for r in range(args.runs)]], stdout=subprocess.PIPE, text=True)
        args.bootstrap = cluster.stdout.readline().split(" ", 1)[1].strip()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in protocols:
            results[protocol] = []
            for run in range(args.runs):
                r = one_run(args, protocol, run, tmp)
                print(f"{protocol} run {run + 1}: {r}", flush=True)
                results[protocol].append(r)
    if cluster:
        cluster.terminate()
        cluster.wait()
    print(f"\nmedian (min-max) ms over {args.runs} runs, {args.partitions} partitions, handlers "
          f"of {args.handler_ms} ms, {args.rate} records/s")
    print(f"{'protocol':10} {'join':>16} {'revoke':>16} {'leave':>16} {'takeover':>16}")
    for protocol, runs in results.items():
        print(f"{protocol:10} " + " ".join(f"{summary([r[k] for r in runs]):>16}"
                                            for k in ("join_ms", "revoke_ms", "leave_ms",
                                                      "takeover_ms")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"partitions": args.partitions, "rate": args.rate,
                       "handler_ms": args.handler_ms, "runs": results,
                       "median": {p: {k: statistics.median([r[k] for r in runs
                                                            if r[k] is not None] or [0])
                                      for k in ("join_ms", "revoke_ms", "leave_ms",
                                                "takeover_ms")}
                                  for p, runs in results.items()}}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
