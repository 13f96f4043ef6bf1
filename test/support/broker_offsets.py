#!/usr/bin/python3
"""Reads a group's committed offsets and the high watermarks of a topic with an independent
client (Debian's confluent-kafka, not kafka-triggers), one line per partition:
"<partition> <committed> <high watermark>" (committed -1: none).
Usage: broker_offsets.py <bootstrap> <group> <topic>"""
import sys

from confluent_kafka import Consumer, TopicPartition

bootstrap, group, topic = sys.argv[1:4]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False})
try:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        sys.exit(f"broker_offsets: topic {topic}: {metadata.error}")
    partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    for tp in consumer.committed(partitions, timeout=10):
        high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
        print(tp.partition, tp.offset if tp.offset >= 0 else -1, high)
finally:
    consumer.close()
