#!/usr/bin/python3
"""Handler semantics through kt-host, checked with an independent client (confluent-kafka):
retries then dead letters carrying every header, --dlq off, a poison message that does not block
other keys, at-most-once never redelivering across kill -9 (and at-least-once, for contrast,
never losing), a restart redoing only unfinished work (the completion map), batch triggers
handling every message once, and retry topics losing nothing across kill -9.
kt-host runs against a kt-cluster process (which outlives it, so dead letters can be read back
and a killed kt-host can be restarted), or against $KT_BOOTSTRAP (real brokers) when set.
Usage: handler_semantics_test.py <path-to-kt-host> <path-to-kt-cluster>"""
import base64
import collections
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import kt_processes
from kt_processes import check, failures, note, processes, start_cluster, stop_all, timed
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

KT_HOST, KT_CLUSTER = sys.argv[1], sys.argv[2]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")  # real brokers; otherwise a kt-cluster process
RUN = f"{os.getpid()}-{int(time.time())}"  # topics and groups are new on every run

# Topic name -> partitions. kt-cluster creates them all up front (the embedded cluster has no
# CreateTopics); on real brokers kt-host creates its own.
DLQ_TOPIC, NODLQ_TOPIC, POISON_TOPIC = f"dlq-{RUN}", f"nodlq-{RUN}", f"poison-{RUN}"
AMO_TOPIC, ALO_TOPIC, BATCH_TOPIC = f"amo-{RUN}", f"alo-{RUN}", f"batch-{RUN}"
MAP_TOPIC, SHARED_MAP_TOPIC = f"map-{RUN}", f"shared-map-{RUN}"
TIERS_TOPIC = f"tiers-{RUN}"
TOPICS = {DLQ_TOPIC: 3, DLQ_TOPIC + ".dlq": 3, NODLQ_TOPIC: 3, POISON_TOPIC: 1,
          POISON_TOPIC + ".dlq": 1, AMO_TOPIC: 2, AMO_TOPIC + ".dlq": 2, ALO_TOPIC: 2,
          ALO_TOPIC + ".dlq": 2, BATCH_TOPIC: 3, BATCH_TOPIC + ".dlq": 3, MAP_TOPIC: 1,
          MAP_TOPIC + ".dlq": 1, SHARED_MAP_TOPIC: 1, SHARED_MAP_TOPIC + ".dlq": 1,
          TIERS_TOPIC: 2, TIERS_TOPIC + ".retry.1": 2, TIERS_TOPIC + ".retry.2": 2,
          TIERS_TOPIC + ".dlq": 2}
KT_HEADERS = ("kt-original-topic", "kt-original-partition", "kt-original-offset", "kt-trigger",
              "kt-error-type", "kt-error-message", "kt-attempts", "kt-failed-at")


def start_host(tmp, name, topic, *extra):
    """Starts kt-host on `topic` (NAME:PARTITIONS from TOPICS); stderr goes to <name>.err."""
    args = [KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", f"{topic}:{TOPICS[topic]}",
            "--log-level", "warning", *extra]
    err = open(os.path.join(tmp, f"{name}.err"), "w")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    processes.append(proc)
    return proc


def exit_status(tmp, name, code, expected=(0,)):
    """`code` as text, with the end of kt-host's stderr when it is not an expected one."""
    if code in expected:
        return f"exit {code}"
    with open(os.path.join(tmp, f"{name}.err")) as f:
        return f"exit {code}, stderr: {f.read()[-300:].strip()}"


def finish(proc, timeout):
    """Exit code of kt-host, or None when it had to be killed after `timeout` seconds."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def run_host(tmp, name, topic, *extra, timeout=60):
    """Runs kt-host to its end; (exit code, summary, output records in file order)."""
    output, summary = os.path.join(tmp, f"{name}.jsonl"), os.path.join(tmp, f"{name}.json")
    proc = start_host(tmp, name, topic, "--output", output, "--summary-json", summary, *extra)
    code = finish(proc, timeout)
    check(code == 0, f"{name}: kt-host exits with 0 ({exit_status(tmp, name, code)})")
    s = {"triggers": [{}], "committed": {}}
    if os.path.exists(summary):
        with open(summary) as f:
            s = json.load(f)
    return code, s, read_output(output)


def read_output(path):
    """Records of a kt-host --output file, in file order; a torn line is a failure."""
    if not os.path.exists(path):
        return []
    records, torn = [], 0
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                torn += 1
    if torn:
        check(False, f"{os.path.basename(path)}: {torn} torn line(s) in the output")
    return records


def line_count(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def consumer(group):
    return Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def high_watermarks(topic):
    c = consumer(f"hw-{RUN}")
    try:
        partitions = len(c.list_topics(topic, timeout=30).topics[topic].partitions)
        return {p: kt_processes.high_watermark(c, topic, p) for p in range(partitions)}
    finally:
        c.close()


def broker_committed(group, topic):
    return kt_processes.broker_committed(BOOTSTRAP, group, topic)


def committed_sum(group, topic):
    return sum(broker_committed(group, topic).values())


def check_commits(label, summary, group, topic, expected):
    kt_processes.check_commits(BOOTSTRAP, label, summary, group, topic, expected)


def read_topic(topic, expected, timeout=30):
    """Every record of `topic` from the beginning (a fresh group, partitions assigned
    explicitly): polls until `expected` records or `timeout` seconds."""
    c = consumer(f"reader-{topic}")
    records = []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(TOPICS[topic])])
        deadline = time.time() + timeout
        while len(records) < expected and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                records.append(m)
    finally:
        c.close()
    return records


def offsets_of(records):
    return collections.Counter((r["topic"], r["partition"], r["offset"]) for r in records)


def every_offset(topic):
    return {(topic, p, o) for p, hw in high_watermarks(topic).items() for o in range(hw)}


def retries_then_dead_letters(tmp):
    """300 messages, offsets divisible by 10 fail on all 3 attempts and are dead-lettered."""
    topic, dlq = DLQ_TOPIC, DLQ_TOPIC + ".dlq"
    started = datetime.datetime.now(datetime.timezone.utc)
    code, s, out = run_host(tmp, "dlq", topic, "--produce", "300", "--group", f"dlq-{RUN}",
                            "--fail-every", "10", "--retries", "2", "--retry-backoff-ms", "5",
                            "--exit-when-idle", "1")
    if code != 0:
        return  # the rest would only repeat that failure
    ended = datetime.datetime.now(datetime.timezone.utc)
    everything = every_offset(topic)
    failing = {k for k in everything if k[2] % 10 == 0}
    n_fail = len(failing)
    check(len(everything) == 300,
          f"dlq: the topic holds the 300 produced messages ({len(everything)})")
    t = s["triggers"][0]
    check(t.get("handled") == 300 - n_fail,
          f"dlq: summary handled = {300 - n_fail} ({t.get('handled')})")
    check(t.get("failed") == n_fail, f"dlq: summary failed = {n_fail} ({t.get('failed')})")
    check(t.get("dead_lettered") == n_fail,
          f"dlq: summary dead_lettered = {n_fail} ({t.get('dead_lettered')})")
    check(t.get("retried") == 2 * n_fail,
          f"dlq: summary retried = {2 * n_fail} ({t.get('retried')})")
    seen = offsets_of(out)
    check(not (set(seen) & failing), "dlq: no failing offset in the output")
    check(set(seen) == everything - failing and all(c == 1 for c in seen.values()),
          f"dlq: every other offset handled exactly once ({len(seen)} distinct of "
          f"{len(everything - failing)}, {sum(seen.values())} lines)")
    # The dead letter writes complete the failing offsets.
    check_commits("dlq", s, f"dlq-{RUN}", topic, 300)

    source = {(m.partition(), m.offset()): m for m in read_topic(topic, 300)}
    letters = read_topic(dlq, n_fail)
    dlq_total = sum(high_watermarks(dlq).values())
    check(dlq_total == n_fail, f"dlq: {dlq} holds exactly {n_fail} records ({dlq_total})")
    by_origin = collections.Counter()
    problems = []
    for m in letters:
        headers = collections.defaultdict(list)
        for k, v in m.headers() or []:
            headers[k].append(v.decode() if v is not None else None)
        h = {k: v[0] for k, v in headers.items()}
        if sorted(headers) != sorted(KT_HEADERS) or any(len(v) != 1 for v in headers.values()):
            problems.append(f"headers {sorted(headers)}")
            continue
        p, o = int(h["kt-original-partition"]), int(h["kt-original-offset"])
        by_origin[(h["kt-original-topic"], p, o)] += 1
        original = source.get((p, o))
        if original is None:
            problems.append(f"{p}@{o}: no such source message")
            continue
        if m.key() != original.key() or m.value() != original.value():
            problems.append(f"{p}@{o}: key/value {m.key()!r}/{m.value()!r} differ from the "
                            f"original {original.key()!r}/{original.value()!r}")
        expected = {"kt-original-topic": topic, "kt-trigger": f"{topic}.t0", "kt-attempts": "3",
                    "kt-error-type": "std::runtime_error"}
        for name, value in expected.items():
            if h[name] != value:
                problems.append(f"{p}@{o}: {name} = {h[name]!r}, expected {value!r}")
        if f"offset {o} fails" not in h["kt-error-message"]:
            problems.append(f"{p}@{o}: kt-error-message {h['kt-error-message']!r}")
        failed_at, slack = h["kt-failed-at"], datetime.timedelta(seconds=5)
        try:
            at = datetime.datetime.fromisoformat(failed_at.replace("Z", "+00:00"))
            if at.utcoffset() != datetime.timedelta(0):
                problems.append(f"{p}@{o}: kt-failed-at {failed_at!r} is not UTC")
            elif not started - slack <= at <= ended + slack:
                problems.append(f"{p}@{o}: kt-failed-at {failed_at!r} outside the run "
                                f"({started.isoformat()} .. {ended.isoformat()})")
        except ValueError:
            problems.append(f"{p}@{o}: kt-failed-at {failed_at!r} is not ISO-8601")
    check(set(by_origin) == failing and all(c == 1 for c in by_origin.values()),
          f"dlq: the dead letters are exactly the failing messages, once each ({len(by_origin)} "
          f"distinct of {n_fail}, {len(letters)} read)")
    check(not problems, f"dlq: every dead letter has the original key, value and all kt-* headers "
                        f"(kt-attempts 3, kt-trigger {topic}.t0, ISO-8601 UTC kt-failed-at) "
                        f"({'; '.join(problems[:5])})")


def dead_letters_off(tmp):
    topic = NODLQ_TOPIC
    code, s, out = run_host(tmp, "nodlq", topic, "--produce", "300", "--group", f"nodlq-{RUN}",
                            "--fail-every", "10", "--retries", "2", "--retry-backoff-ms", "5",
                            "--dlq", "off", "--exit-when-idle", "1")
    if code != 0:
        return
    everything = every_offset(topic)
    failing = {k for k in everything if k[2] % 10 == 0}
    t = s["triggers"][0]
    check(t.get("failed") == len(failing),
          f"dlq off: summary failed = {len(failing)} ({t.get('failed')})")
    check(t.get("dead_lettered") == 0,
          f"dlq off: summary dead_lettered = 0 ({t.get('dead_lettered')})")
    check(t.get("handled") == 300 - len(failing),
          f"dlq off: summary handled = {300 - len(failing)} ({t.get('handled')})")
    seen = offsets_of(out)
    check(set(seen) == everything - failing and all(c == 1 for c in seen.values()),
          f"dlq off: every non-failing offset handled exactly once ({len(seen)})")
    check_commits("dlq off", s, f"nodlq-{RUN}", topic, 300)  # failed messages complete too
    c = consumer(f"meta-{RUN}")
    try:
        topics = c.list_topics(timeout=30).topics  # all topics: asks for none, creates none
    finally:
        c.close()
    exists = topic + ".dlq" in topics
    written = sum(high_watermarks(topic + ".dlq").values()) if exists else 0
    check(written == 0, f"dlq off: nothing written to {topic}.dlq "
                        f"({'exists' if exists else 'no such topic'}, {written} records)")


def poison_does_not_block_other_keys(tmp):
    """One partition, 3000 messages (keys key-0..key-999, three each: offsets k, k+1000, k+2000),
    ordering by key: offsets divisible by 47 fail 4 times (~1.4 s of backoff each) while the
    other keys keep flowing; a poison key's later (healthy) messages wait for it."""
    topic, total, every = POISON_TOPIC, 3000, 47
    output = os.path.join(tmp, "poison.jsonl")
    summary = os.path.join(tmp, "poison.json")
    proc = start_host(tmp, "poison", topic, "--produce", str(total), "--group", f"poison-{RUN}",
                      "--ordering", "key", "--max-in-flight", "64", "--fail-every", str(every),
                      "--retries", "3", "--retry-backoff-ms", "200", "--handler-ms", "2",
                      "--exit-when-idle", "2", "--output", output, "--summary-json", summary)
    poisoned = range(0, total, every)
    healthy = total - len(poisoned)
    code = finish(proc, 90)
    check(code == 0, f"poison: kt-host exits with 0 ({exit_status(tmp, 'poison', code)})")
    if code != 0:
        return
    out = read_output(output)
    failing = {(topic, 0, o) for o in poisoned}
    seen = offsets_of(out)
    check(set(seen) == {(topic, 0, o) for o in range(total)} - failing
          and all(c == 1 for c in seen.values()),
          f"poison: every non-failing message handled once ({len(seen)} of {healthy})")
    # A poison key's later messages (o + 1000, o + 2000) wait for its retries (>= 1.4 s of
    # backoff: timers never fire early); other keys do not. So each such message is overtaken:
    # some higher offset of another key is handled before it. A blocked lane (the partition
    # held by its retrying message) would hand everything out in offset order: none overtaken.
    held = {o + 1000 * j for o in poisoned for j in (1, 2) if o + 1000 * j < total}
    highest, overtaken = -1, set()
    for r in out:
        if r["offset"] in held and highest > r["offset"]:
            overtaken.add(r["offset"])
        highest = max(highest, r["offset"])
    check(held and overtaken == held,
          f"poison: the other keys were not held up by the retrying ones ({len(overtaken)} of "
          f"the {len(held)} messages waiting behind a poison one were overtaken)")
    by_key = collections.defaultdict(list)
    for r in out:
        by_key[r["key"]].append(r["offset"])
    disorder = {k: v for k, v in by_key.items() if v != sorted(v)}
    check(len(by_key) == 1000 and not disorder,
          f"poison: each key's messages handled in offset order ({len(by_key)} keys, out of "
          f"order: {dict(list(disorder.items())[:3])})")
    check(os.path.exists(summary), "poison: kt-host wrote its summary")
    if os.path.exists(summary):
        with open(summary) as f:
            t = json.load(f)["triggers"][0]
        n = len(poisoned)
        check(t["failed"] == n and t["retried"] == 3 * n and t["dead_lettered"] == n,
              f"poison: summary failed/retried/dead_lettered = {n}/{3 * n}/{n} "
              f"({t['failed']}/{t['retried']}/{t['dead_lettered']})")


def crash_runs(tmp, case, topic, delivery):
    """Produces 3000 messages on 2 partitions and kills kt-host -9 once the broker holds a commit
    of the group on every partition (read independently) and messages are left; restarts it,
    producing 3000 more so the restart surely has work (at_most_once may have committed all it
    had fetched), and kills it again once its own progress reached the broker; then lets a third
    run finish (--exit-when-idle 2). Handlers of 10 ms (about 200 messages/s) make each kill
    land mid-stream. Returns the group, the message count and the output records of each run, or
    None when the first run never got to a commit."""
    group, batch = f"{case}-{RUN}", 3000
    total = 2 * batch
    # The dead member leaves the group in 6 s.
    base = ("--group", group, "--delivery", delivery, "--handler-ms", "10",
            *kt_processes.group_args())
    runs = []
    for run in range(3):
        name = f"{case}-{run}"
        output = os.path.join(tmp, f"{name}.jsonl")
        extra = (["--produce", str(batch)] if run < 2 else []) + \
            (["--exit-when-idle", "2"] if run > 0 else [])
        at_start = broker_committed(group, topic)
        started = time.time()
        proc = start_host(tmp, name, topic, *base, "--output", output, *extra)
        if run < 2:
            # Killed once this run handled something and, on every partition, a commit past
            # what the group held at its start reached the broker. A restarted run may find
            # nothing to do
            # (at_most_once committed everything it fetched) and exit by itself when idle.
            progressed, deadline = False, time.time() + 60
            while time.time() < deadline and proc.poll() is None and not progressed:
                now = broker_committed(group, topic) if line_count(output) else {}
                progressed = bool(now) and all(now.get(p, 0) > at_start.get(p, 0)
                                               for p in range(TOPICS[topic]))
                time.sleep(0.05)
            alive = proc.poll() is None
            if alive:
                proc.send_signal(signal.SIGKILL)
            code = proc.wait()
            handled = line_count(output)
            if run == 0:
                check(alive and progressed and handled < batch,
                      f"{case}: run 1 was killed -9 mid-stream after a commit ({handled} of "
                      f"{batch} handled; {exit_status(tmp, name, code, (-signal.SIGKILL,))})")
                if not progressed:
                    return None  # it never got going: the rest would only repeat that failure
            else:
                check(alive or code == 0, f"{case}: run 2 was killed -9 or exited cleanly when "
                      f"idle ({exit_status(tmp, name, code, (0, -signal.SIGKILL))})")
            how = "killed -9" if alive else f"exited by itself ({code})"
        else:
            code = finish(proc, 90)
            check(code == 0, f"{case}: the last run exits with 0 ({exit_status(tmp, name, code)})")
            how = "exited when idle"
        runs.append(read_output(output))
        note(f"{case}: run {run + 1} handled {len(runs[-1])}, {how} after "
             f"{time.time() - started:.1f} s")
    return group, total, runs


def at_most_once_never_redelivers(tmp):
    result = crash_runs(tmp, "amo", AMO_TOPIC, "at_most_once")
    if result is None:
        return
    group, total, runs = result
    restarted = sum(len(r) for r in runs[1:])
    check(restarted > 0, f"at_most_once: the restarts handled messages ({restarted}), so there "
                         f"was something to redeliver")
    seen = offsets_of(sum(runs, []))
    duplicates = {k: c for k, c in seen.items() if c > 1}
    check(not duplicates, f"at_most_once: no offset handled twice across kill -9 "
                          f"({len(duplicates)} duplicated, e.g. {list(duplicates.items())[:3]})")
    everything = every_offset(AMO_TOPIC)
    check(set(seen) <= everything, "at_most_once: only produced offsets handled")
    lost = len(everything - set(seen))
    note(f"at_most_once: {lost} of {len(everything)} messages lost (never handled) across the "
         f"two kills; allowed for at-most-once")
    committed = committed_sum(group, AMO_TOPIC)
    check(committed == total, f"at_most_once: committed offsets reach {total} ({committed})")


def at_least_once_never_loses(tmp):
    result = crash_runs(tmp, "alo", ALO_TOPIC, "at_least_once")
    if result is None:
        return
    group, total, runs = result
    seen = offsets_of(sum(runs, []))
    everything = every_offset(ALO_TOPIC)
    missing = everything - set(seen)
    check(len(everything) == total and not missing,
          f"at_least_once: every offset handled at least once across kill -9 "
          f"({len(missing)} missing of {len(everything)}, e.g. {sorted(missing)[:3]})")
    duplicates = sum(c - 1 for c in seen.values())
    note(f"at_least_once: {duplicates} duplicate deliveries across the two kills")
    # What was committed before a kill is not handled again: the restart resumes past offset 0.
    restart_starts = {}
    for r in runs[1]:
        key = r["partition"]
        restart_starts[key] = min(restart_starts.get(key, r["offset"]), r["offset"])
    check(runs[1] and all(o > 0 for o in restart_starts.values()),
          f"at_least_once: the restart resumed from committed offsets, not from the start "
          f"(first offsets of run 2 per partition: {restart_starts})")
    committed = committed_sum(group, ALO_TOPIC)
    with open(os.path.join(tmp, "alo-2.err")) as f:
        last_run_said = f.read()[-600:].strip()
    check(committed == total, f"at_least_once: committed offsets reach {total} ({committed}"
                              f"{'; the last run said: ' + last_run_said if committed != total else ''})")


def restart_redoes_only_unfinished_work(tmp):
    """Key-ordered, 1 partition, 1000 keys, 32 in flight, 10 ms handlers. The message at offset 0
    fails and waits 6 s for its retry, so the committed offset stays at 0 while the other keys
    run ahead; kill -9 once 8000 are handled (~2.5 s). Without the completion map the restart
    redoes all of them; with it, only what was in flight or finished after the last acknowledged
    commit (commits go out every 1000 completions, one at a time: at most two commits' worth).
    At most 3 200 messages/s, so a commit's round trip stays well inside that bound: with 256 in
    flight (25 000/s) a TSan build's round trips alone let 3 000 finish unacknowledged."""
    topic, group, total, in_flight, commit_after = MAP_TOPIC, f"map-{RUN}", 20000, 32, 1000
    base = ("--group", group, "--ordering", "key", "--handler-ms", "10", "--max-in-flight",
            str(in_flight), "--fail-every", str(total // 4), "--retries", "1",
            "--retry-backoff-ms", "6000", "--commit-after", str(commit_after),
            *kt_processes.group_args())
    output = os.path.join(tmp, "map-0.jsonl")
    proc = start_host(tmp, "map-0", topic, *base, "--produce", str(total), "--output", output)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and line_count(output) < 8000:
        time.sleep(0.01)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_output(output)
    check(alive and len(first) < total - 4,
          f"map: killed -9 mid-stream ({len(first)} of {total} handled)")
    # Idle for longer than a retry's wait: a partition held back behind the failing message (its
    # backlog reached max_backlog) resumes once the retry has run.
    code, _, second = run_host(tmp, "map-1", topic, *base, "--exit-when-idle", "8", timeout=90)
    failing = {(topic, 0, o) for o in range(0, total, total // 4)}  # dead letters, never output
    seen = offsets_of(first + second)
    missing = every_offset(topic) - failing - set(seen)
    check(not missing, f"map: every offset handled across the kill ({len(missing)} missing)")
    redone = len(set(offsets_of(first)) & set(offsets_of(second)))
    bound = in_flight + 2 * commit_after
    check(redone <= bound,
          f"map: the restart redid {redone} of the {len(first)} finished before the kill "
          f"(at most in flight + two commits' worth: {bound})")
    committed = committed_sum(group, topic)
    check(committed == total, f"map: committed offsets reach {total} ({committed})")
    if os.environ.get("KT_BOOTSTRAP"):
        # The broker's own record of the commits, read without librdkafka: while offset 0 waited,
        # they carried a map (base64 of magic 'k', version 1) for offset 0.
        stored = kt_processes.committed_metadata(BOOTSTRAP, group, topic)
        maps = [base64.b64decode(m) for _, o, m in stored if o == 0 and m]
        check(maps and all(m[:2] == b"k\x01" for m in maps),
              f"map: the broker stored completion maps with the commits at offset 0 ({len(maps)} "
              f"of {len(stored)} commits, largest {max(map(len, maps), default=0)} bytes)")


def two_triggers_one_slow_resume_apart(tmp):
    """Two triggers share a consumer on one partition: 'fast' (no wait) finishes all 1500 at once,
    'slow' (5 ms each, one at a time) holds the committed offset back. kill -9 once slow handled
    400. After the restart, fast redoes nothing it finished (its section of the map says so) and
    slow resumes where it was: each redoes at most what it finished in the last 1.5 s (one
    commit period and a round trip) and what was in flight."""
    topic, group, total = SHARED_MAP_TOPIC, f"shared-map-{RUN}", 1500
    config = os.path.join(tmp, "shared-map.json")
    with open(config, "w") as f:
        json.dump({"common": {"bootstrap_servers": "${KAFKA_BOOTSTRAP_SERVERS}",
                              "properties": kt_processes.group_properties()},
                   "consumers": [{"name": "c", "group_id": group, "topics": [topic]}],
                   "triggers": [{"name": "fast", "consumer": "c", "topic": topic,
                                 "handler": "record"},
                                {"name": "slow", "consumer": "c", "topic": topic,
                                 "handler": "sleep:5"}]}, f)
    output = os.path.join(tmp, "shared-map-0.jsonl")

    def handled(records, trigger):
        return [r for r in records if r["trigger"] == trigger]

    proc = start_host(tmp, "shared-map-0", topic, "--config", config, "--produce", str(total),
                      "--output", output)
    deadline = time.time() + 60
    while (time.time() < deadline and proc.poll() is None
           and len(handled(read_output(output), "slow")) < 400):
        time.sleep(0.05)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    killed_ms = time.time() * 1000
    proc.wait()
    first = read_output(output)
    check(alive and len(handled(first, "fast")) == total and len(handled(first, "slow")) < total,
          f"shared map: killed -9 with fast done and slow behind ({len(handled(first, 'fast'))} "
          f"and {len(handled(first, 'slow'))} of {total})")
    code, _, second = run_host(tmp, "shared-map-1", topic, "--config", config,
                               "--exit-when-idle", "3", timeout=90)
    for trigger in ("fast", "slow"):
        before, after = handled(first, trigger), handled(second, trigger)
        missing = every_offset(topic) - set(offsets_of(before + after))
        check(not missing, f"shared map: {trigger} handled every offset ({len(missing)} missing)")
        redone = set(offsets_of(before)) & set(offsets_of(after))
        recent = sum(1 for r in before if r["at_ms"] > killed_ms - 1500)
        check(len(redone) <= recent + 1,
              f"shared map: {trigger} redid {len(redone)} after the restart (at most the {recent} "
              f"it finished in the last 1.5 s before the kill, and the one in flight)")
    committed = committed_sum(group, topic)
    check(code == 0 and committed == total,
          f"shared map: {exit_status(tmp, 'shared-map-1', code)}, committed {committed} of {total}")


def retry_tiers_survive_kill_9(tmp):
    """Retry topics 1s,2s; offsets divisible by 10 fail in every tier (--fail-every 10 judges a
    tier record by its original offset). kill -9 once tier 1 holds records, then a restart: every
    other offset is handled, every failing one reaches the dead letter topic with its origin (a
    duplicate is allowed: a tier record written just before the kill is written again), and the
    topic commits to its end."""
    topic, group, total = TIERS_TOPIC, f"tiers-{RUN}", 400
    tiers = ["--retry-topics", "1s,2s", "--fail-every", "10", "--group", group,
             *kt_processes.group_args()]
    output = os.path.join(tmp, "tiers-0.jsonl")
    proc = start_host(tmp, "tiers-0", topic, *tiers, "--produce", str(total), "--output", output)
    deadline = time.time() + 60
    while (time.time() < deadline and proc.poll() is None
           and sum(high_watermarks(topic + ".retry.1").values()) < 10):
        time.sleep(0.05)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    check(alive, "tiers: killed -9 while records wait in tier 1")
    # The restart joins once the killed member's session expired (6 s).
    code, _, second = run_host(tmp, "tiers-1", topic, *tiers, "--exit-when-idle", "5",
                               timeout=90)
    handled = set(offsets_of(read_output(output) + second))
    failing = {(topic, p, o) for (_, p, o) in every_offset(topic) if o % 10 == 0}
    missing = every_offset(topic) - failing - handled
    check(not missing, f"tiers: every healthy offset handled across the kill ({len(missing)} "
                       f"missing)")
    letters = read_topic(topic + ".dlq", sum(high_watermarks(topic + ".dlq").values()))
    origins = {(dict(m.headers()).get("kt-original-partition", b"").decode(),
                dict(m.headers()).get("kt-original-offset", b"").decode()) for m in letters}
    lost = {(str(p), str(o)) for (_, p, o) in failing} - origins
    tiers_seen = {dict(m.headers()).get("kt-retry-tier", b"").decode() for m in letters}
    check(not lost and tiers_seen == {"2"},
          f"tiers: every failing offset dead-lettered after tier 2 ({len(lost)} of "
          f"{len(failing)} missing, {len(letters) - len(origins)} duplicates, tiers {tiers_seen})")
    committed = committed_sum(group, topic)
    check(code == 0 and committed == total,
          f"tiers: {exit_status(tmp, 'tiers-1', code)}, committed {committed} of {total}")


def batches(tmp):
    topic = BATCH_TOPIC
    code, s, out = run_host(tmp, "batch", topic, "--produce", "500", "--group", f"batch-{RUN}",
                            "--batch", "50", "--exit-when-idle", "1")
    if code != 0:
        return
    seen = offsets_of(out)
    everything = every_offset(topic)
    check(len(everything) == 500 and set(seen) == everything
          and all(c == 1 for c in seen.values()),
          f"batch: every message handled exactly once ({len(seen)} distinct of "
          f"{len(everything)}, {sum(seen.values())} lines)")
    t = s["triggers"][0]
    check(t.get("handled") == 500, f"batch: summary handled = 500 ({t.get('handled')})")
    check_commits("batch", s, f"batch-{RUN}", topic, 500)


started = time.time()
try:
    with tempfile.TemporaryDirectory() as tmp:
        if not BOOTSTRAP:
            BOOTSTRAP = start_cluster(KT_CLUSTER, TOPICS)
        # The crash cases spend most of their time waiting for group rejoins: run them alongside.
        crash_cases = [threading.Thread(target=timed, args=(case, tmp))
                       for case in (at_most_once_never_redelivers, at_least_once_never_loses,
                                    restart_redoes_only_unfinished_work,
                                    two_triggers_one_slow_resume_apart)]
        for thread in crash_cases:
            thread.start()
        # Under the consumer protocol only the cases where the group matters run again.
        classic_only = (retries_then_dead_letters, dead_letters_off,
                        poison_does_not_block_other_keys, batches, retry_tiers_survive_kill_9)
        for case in classic_only if kt_processes.GROUP_PROTOCOL == "classic" else ():
            timed(case, tmp)
        for thread in crash_cases:
            thread.join()
finally:
    stop_all()
print(f"handler_semantics_test: {len(failures)} failure(s) in {time.time() - started:.1f} s")
sys.exit(1 if failures else 0)
