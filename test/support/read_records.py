#!/usr/bin/python3
"""Reads the first <count> records of a topic with an independent client (Debian's
confluent-kafka, not kafka-triggers), one JSON object a line: partition, offset, key, value and
headers ([name, value] pairs; null for null). Exits 1 if fewer arrive within 30 s.
Usage: read_records.py <bootstrap> <topic> <count>"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-records-{uuid.uuid4()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def text(b):
    return None if b is None else b.decode("utf-8", "replace")


try:
    consumer.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < count and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error() is not None:
            continue
        print(json.dumps({"partition": m.partition(), "offset": m.offset(), "key": text(m.key()),
                          "value": text(m.value()),
                          "headers": [[n, text(v)] for n, v in (m.headers() or [])]}))
        got += 1
    sys.exit(0 if got >= count else f"read_records: {got} of {count} records of {topic}")
finally:
    consumer.close()
