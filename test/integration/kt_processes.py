"""Shared by the Python suites that drive kt-host processes: thread-safe check/note output, a
kt-cluster process holding the suite's topics, and commits read back with an independent client
(Debian's confluent-kafka)."""
import os
import select
import subprocess
import tempfile
import threading
import time

# The consumer group protocol the suites run under: classic (default) or consumer (KIP-848).
GROUP_PROTOCOL = os.environ.get("KT_GROUP_PROTOCOL", "classic")
if GROUP_PROTOCOL not in ("classic", "consumer"):
    raise SystemExit(f"KT_GROUP_PROTOCOL={GROUP_PROTOCOL!r}: use classic or consumer")
# A killed member leaves its group after this long. Under the consumer protocol the brokers set
# it: kt-cluster below and scripts/kafka-local.sh both give such groups the same 6 s.
SESSION_TIMEOUT_MS = 6000

failures = []  # what failed, in order
processes = []  # every process started; the suites kill what is left at exit
_clusters = []  # the kt-cluster processes among them
_print_lock = threading.Lock()


def check(condition, what):
    with _print_lock:
        print(("ok   " if condition else "FAIL ") + what, flush=True)
        if not condition:
            failures.append(what)


def note(text):
    with _print_lock:
        print("     " + text, flush=True)


def group_args():
    """kt-host arguments for GROUP_PROTOCOL, with the short session the group tests rely on."""
    if GROUP_PROTOCOL == "consumer":
        return ["--group-protocol", "consumer"]
    return ["--property", f"session.timeout.ms={SESSION_TIMEOUT_MS}"]


def group_properties():
    """The same as consumer properties of a kt-host config file."""
    if GROUP_PROTOCOL == "consumer":
        return {"group.protocol": "consumer"}
    return {"session.timeout.ms": SESSION_TIMEOUT_MS}


def start_cluster(kt_cluster, topics, with_process=False):
    """Starts kt-cluster with 3 brokers and `topics` (name -> partitions); its bootstrap (and the
    process, with_process=True)."""
    args = [kt_cluster, "--brokers", "3",
            "--consumer-session-timeout-ms", str(SESSION_TIMEOUT_MS),
            "--consumer-heartbeat-interval-ms", "1000"]
    for topic, partitions in topics.items():
        args += ["--topic", f"{topic}:{partitions}"]
    # Its log goes to a file so that a cluster that dies mid-suite can say why (cluster_died).
    log = tempfile.NamedTemporaryFile(prefix="kt-cluster-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    proc.log_path = log.name
    processes.append(proc)
    _clusters.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("bootstrap: "):
        raise RuntimeError(f"kt-cluster did not print its bootstrap ({line!r})")
    bootstrap = line.split(" ", 1)[1].strip()
    return (bootstrap, proc) if with_process else bootstrap


def kill_cluster(proc):
    """Kills a kt-cluster of start_cluster on purpose (kill -9): not a death to report."""
    proc.kill()
    proc.wait()
    _clusters.remove(proc)
    os.unlink(proc.log_path)


def high_watermark(consumer, topic, partition, timeout=30):
    """The partition's high watermark from a confluent-kafka consumer, retried while the broker
    answers with a retriable error (a topic just created may have no leader for a moment:
    NOT_LEADER_FOR_PARTITION)."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition
    leaderless = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART)
    deadline = time.time() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                  timeout=timeout)[1]
        except KafkaException as e:
            error = e.args[0]
            if not (error.retriable() or error.code() in leaderless) or time.time() > deadline:
                raise
            time.sleep(0.2)


def broker_committed(bootstrap, group, topic):
    """partition -> offset the broker holds for `group` on `topic`, read with confluent-kafka
    (partitions without a commit left out)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = c.list_topics(topic, timeout=30).topics[topic].partitions
        offsets = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in offsets if tp.offset >= 0}
    finally:
        c.close()


def metadata_max_bytes(bootstrap):
    """A broker's offset.metadata.max.bytes read with confluent-kafka's DescribeConfigs, or None
    when it does not answer (the embedded cluster has no DescribeConfigs)."""
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker = next(iter(admin.list_topics(timeout=30).brokers))
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    try:
        configs = admin.describe_configs([resource], request_timeout=10)[resource].result(15)
    except Exception:  # noqa: BLE001 - any refusal means "not known"
        return None
    entry = configs.get("offset.metadata.max.bytes")
    return int(entry.value) if entry is not None else None


def committed_metadata(bootstrap, group, topic, timeout=30):
    """Every commit metadata the broker stored for `group` on `topic`, in order, as
    [(partition, offset, metadata bytes)]: read from __consumer_offsets with confluent-kafka and
    decoded here (OffsetCommit key version 0/1, value versions 1-4), independently of librdkafka's
    committed(). Real brokers only (the embedded cluster keeps commits in memory)."""
    import struct
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    def string(buf, at):
        (n,) = struct.unpack_from(">h", buf, at)
        return buf[at + 2:at + 2 + max(n, 0)], at + 2 + max(n, 0)

    def compact_string(buf, at):  # flexible versions: unsigned varint of length + 1
        n, shift = 0, 0
        while True:
            byte = buf[at]
            at += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return buf[at:at + max(n - 1, 0)], at + max(n - 1, 0)

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"offsets-reader-{time.time()}",
                  "enable.auto.commit": False})
    found = []
    try:
        partitions = c.list_topics("__consumer_offsets", timeout=timeout)
        partitions = partitions.topics["__consumer_offsets"].partitions
        ends = {p: c.get_watermark_offsets(TopicPartition("__consumer_offsets", p), timeout=timeout)[1]
                for p in partitions}
        c.assign([TopicPartition("__consumer_offsets", p, OFFSET_BEGINNING) for p in partitions])
        left, deadline = {p for p, end in ends.items() if end > 0}, time.time() + timeout
        while left and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
            key, value = m.key(), m.value()
            if not key or not value or struct.unpack_from(">h", key)[0] not in (0, 1):
                continue  # group metadata, or a tombstone
            g, at = string(key, 2)
            t, at = string(key, at)
            (partition,) = struct.unpack_from(">i", key, at)
            if g.decode() != group or t.decode() != topic:
                continue
            version, at = struct.unpack_from(">h", value)[0], 2
            if version not in (1, 2, 3, 4):
                raise RuntimeError(f"__consumer_offsets value version {version} not understood")
            (offset,) = struct.unpack_from(">q", value, at)
            at += 8 + (4 if version >= 3 else 0)  # leader epoch
            # Version 4 (Kafka 4.x) is the first flexible one: a compact string.
            metadata, _ = (compact_string if version >= 4 else string)(value, at)
            found.append((partition, offset, metadata))
    finally:
        c.close()
    return found


def summary_committed(summary, topic):
    """partition -> offset of a kt-host summary's `committed` (kt-host's own view)."""
    return {int(p): o for p, o in summary.get("committed", {}).get(topic, {}).items()}


def check_commits(bootstrap, label, summary, group, topic, expected):
    """The broker holds commits of `group` on `topic` summing to `expected` (read with
    confluent-kafka), and the kt-host summary's `committed` (its own view, what its metrics show)
    is exactly what the broker holds."""
    broker = broker_committed(bootstrap, group, topic)
    check(sum(broker.values()) == expected,
          f"{label}: the broker's committed offsets of {topic} sum to {expected} ({broker})")
    ours = summary_committed(summary, topic)
    check(ours == broker, f"{label}: the summary's committed offsets are the broker's ({ours})")


def timed(case, tmp):
    """Runs case(tmp); an exception is a failure (the other cases still run); notes the time."""
    started = time.time()
    try:
        case(tmp)
    except Exception as e:
        check(False, f"{case.__name__} raised {type(e).__name__}: {e}")
    note(f"{case.__name__}: {time.time() - started:.1f} s")


def report_dead_clusters():
    """A kt-cluster that exited before the suite stopped it is a failure of its own: its exit
    code (a negative one is the signal) and the tail of its log say what ended it."""
    for proc in _clusters:
        if proc.poll() is not None:
            with open(proc.log_path, errors="replace") as f:
                tail = f.read()[-2000:]
            check(False, f"kt-cluster exited during the suite (exit code {proc.returncode}); "
                         f"its log ends:\n{tail}")


def stop_all():
    """Terminates (then kills) every process still running."""
    report_dead_clusters()
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for proc in _clusters:
        os.unlink(proc.log_path)
