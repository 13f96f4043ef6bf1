#!/usr/bin/env python3
"""Real-broker-only checks (need $KT_BOOTSTRAP from scripts/kafka-local.sh, which this test
restarts): committed offsets survive a broker restart, and two kt-host processes in one group
share the partitions through a cooperative rebalance without handling completed work twice.
Checked with an independent client (confluent-kafka). Usage: real_broker_test.py <kt-host>"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KT_HOST = sys.argv[1]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")
if not BOOTSTRAP:
    print("real_broker_test skipped: KT_BOOTSTRAP is not set (mock-independent, real broker only)")
    sys.exit(77)
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
RUN = f"{os.getpid()}-{int(time.time())}"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def create_topic(name, partitions):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def produce(topic, count, per_second=None):
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, key=f"key-{i % 100}", value=f"value-{i}")
        producer.poll(0)
        if per_second:
            time.sleep(1.0 / per_second)
    assert producer.flush(30) == 0


def committed(group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    consumer.close()
    return {tp.partition: tp.offset for tp in offsets}


def kt_host(topic, group, output, *extra):
    return subprocess.Popen([KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", topic, "--group", group,
                             "--output", output, "--log-level", "warning", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(r["partition"], r["offset"]) for r in map(json.loads, f)]


def committed_offsets_survive_a_broker_restart(tmp):
    topic, group = f"restart-{RUN}", f"restart-{RUN}"
    create_topic(topic, 3)
    produce(topic, 300)
    first = kt_host(topic, group, os.path.join(tmp, "restart-1.jsonl"), "--exit-when-idle", "2")
    check(first.wait(120) == 0, f"first run exits cleanly ({first.stderr.read()[-200:]})")
    before = committed(group, topic, 3)
    check(sum(before.values()) == 300, f"all 300 committed before the restart ({before})")
    started = time.time()
    subprocess.run([os.path.join(SCRIPTS, "kafka-local.sh"), "restart"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"     broker restarted in {time.time() - started:.1f} s")
    after = committed(group, topic, 3)
    check(after == before, f"committed offsets unchanged after the restart ({after})")
    second_out = os.path.join(tmp, "restart-2.jsonl")
    second = kt_host(topic, group, second_out, "--exit-when-idle", "1")
    check(second.wait(120) == 0, "second run exits cleanly")
    check(len(records(second_out)) == 0, "nothing is redelivered after the restart")


def two_processes_share_a_group_without_duplicating_work(tmp):
    topic, group = f"pair-{RUN}", f"pair-{RUN}"
    create_topic(topic, 6)
    out_a, out_b = os.path.join(tmp, "a.jsonl"), os.path.join(tmp, "b.jsonl")
    args = ("--handler-ms", "5", "--exit-when-idle", "3")
    producer = threading.Thread(target=produce, args=(topic, 3000, 500))
    producer.start()
    a = kt_host(topic, group, out_a, *args)
    time.sleep(2)
    b = kt_host(topic, group, out_b, *args)  # joins: cooperative rebalance moves partitions to b
    producer.join()
    check(a.wait(120) == 0 and b.wait(120) == 0, "both processes exit cleanly")
    seen = collections.Counter(records(out_a) + records(out_b))
    check(len(seen) == 3000, f"every message handled ({len(seen)} of 3000)")
    duplicates = sum(c - 1 for c in seen.values())
    check(duplicates == 0, f"no completed message handled twice ({duplicates})")
    check(len(records(out_a)) > 0 and len(records(out_b)) > 0,
          f"partitions spread across both ({len(records(out_a))} / {len(records(out_b))})")
    check(sum(committed(group, topic, 6).values()) == 3000, "committed offsets reach 3000")


with tempfile.TemporaryDirectory() as tmp:
    committed_offsets_survive_a_broker_restart(tmp)
    two_processes_share_a_group_without_duplicating_work(tmp)
print(f"real_broker_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
