#!/usr/bin/env python3
"""CLI test of `kt-host admin describe|reset`: the table after a kt-host group committed, resets
to each target with and without --dry-run (read back with confluent-kafka, an independent
client), the refusal while a kt-host is a member of the group, and bad options with their exit
codes (0 done, 1 refused or failed, 2 usage). Runs against a kt-cluster process, or $KT_BOOTSTRAP.
Usage: kt_host_admin_test.py <path-to-kt-host> <path-to-kt-cluster>"""
import os
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer

from kt_processes import (broker_committed, check, failures, group_args, note, processes,
                          start_cluster, stop_all, timed)

KT_HOST, KT_CLUSTER = sys.argv[1:3]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")
REAL = bool(BOOTSTRAP)
RUN = f"{os.getpid()}-{int(time.time())}"
TOPIC = f"admin-{RUN}"
FORMS = "use earliest, latest, timestamp:<ms since the epoch> or offset:<n>"


def admin(*args):
    """Runs `kt-host admin ARGS --bootstrap BOOTSTRAP`: (exit code, stdout, stderr)."""
    proc = subprocess.run([KT_HOST, "admin", *args, "--bootstrap", BOOTSTRAP],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def table(stdout, columns):
    """Rows of a table after its header line (starting with columns[0]) as dicts."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [columns[0]])
    rows = [line.split() for line in lines[start + 1:]]
    return [dict(zip(columns, row)) for row in rows if row and (row[0].isdigit() or row[0] == TOPIC)]


def produce(count, first):
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    for i in range(first, first + count):
        producer.produce(TOPIC, key=f"key-{i % 100}", value=f"value-{i}")
    check(producer.flush(30) == 0, f"{count} more records produced")


def run_host(group, tmp, idle=True):
    """kt-host consuming TOPIC in `group`: run until idle, or (idle=False) started and returned."""
    args = [KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", f"{TOPIC}:3", "--group", group,
            "--log-level", "warning", "--output", os.path.join(tmp, f"{group}.jsonl"),
            *group_args()]
    if idle:
        proc = subprocess.run([*args, "--produce", "300", "--exit-when-idle", "1"],
                              capture_output=True, text=True, timeout=120)
        check(proc.returncode == 0, f"kt-host consumed and committed ({proc.stderr[-300:]})")
        return None
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    processes.append(proc)
    return proc


def handled(tmp, group):
    path = os.path.join(tmp, f"{group}.jsonl")
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0


def describe_after_a_commit(tmp):
    group = f"described-{RUN}"
    run_host(group, tmp)
    produce(30, 300)
    code, out, err = admin("describe", "--group", group, "--topic", TOPIC)
    check(code == 0, f"describe: exit code 0 ({err.strip()})")
    rows = table(out, ["TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG", "OWNER"])
    broker = broker_committed(BOOTSTRAP, group, TOPIC)
    ours = {int(r["PARTITION"]): int(r["COMMITTED"]) for r in rows}
    check(ours == broker, f"describe: the committed column is what the broker holds ({ours})")
    check(sum(int(r["LAG"]) for r in rows) == 30, "describe: the lag column sums to the 30 unread")
    check(all(int(r["HIGH-WATERMARK"]) - int(r["COMMITTED"]) == int(r["LAG"]) for r in rows),
          "describe: lag = high watermark - committed")
    if REAL:
        check(f"group {group}  state Empty" in out and "members 0" in out,
              f"describe: the group is Empty with 0 members ({out.splitlines()[0]})")
    else:
        check("state unknown" in out, "describe: the state is unknown on the embedded cluster")
        note("skipped on the embedded cluster: group state (the mock has no DescribeGroups)")


def resets(tmp):
    group = f"reset-{RUN}"  # never joined: on the embedded cluster too, commits from outside
    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "offset:5")
    check(code == 0 and "reset 3 partition(s)" in out, f"reset offset:5: done ({err.strip()})")
    check(broker_committed(BOOTSTRAP, group, TOPIC) == {0: 5, 1: 5, 2: 5},
          "reset offset:5: the broker holds 5 everywhere")

    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "earliest",
                           "--dry-run")
    rows = table(out, ["PARTITION", "CURRENT", "NEW"])
    check(code == 0 and "(dry run: nothing changed)" in out
          and [(r["CURRENT"], r["NEW"]) for r in rows] == [("5", "0")] * 3,
          f"dry run earliest: the plan 5 -> 0 ({out.strip()})")
    check(broker_committed(BOOTSTRAP, group, TOPIC) == {0: 5, 1: 5, 2: 5},
          "dry run: the broker's offsets did not change")

    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "latest",
                           "--partitions", "0,2")
    high = {int(r["PARTITION"]): int(r["NEW"]) for r in table(out, ["PARTITION", "CURRENT", "NEW"])}
    check(code == 0 and sorted(high) == [0, 2], f"latest on 0,2: a plan of 2 partitions ({high})")
    check(broker_committed(BOOTSTRAP, group, TOPIC) == {0: high[0], 1: 5, 2: high[2]},
          "latest on 0,2: those at their high watermark, partition 1 unchanged")

    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "offset:999999",
                           "--partitions", "0")
    check(code == 0 and "offset:999999 lies outside partition 0's watermarks: clamped to "
          f"{high[0]}" in err, f"offset beyond the log: clamped with a warning ({err.strip()})")

    future = int(time.time() * 1000) + 3_600_000
    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to",
                           f"timestamp:{future}", "--partitions", "1")
    rows = table(out, ["PARTITION", "CURRENT", "NEW"])
    check(code == 0 and len(rows) == 1 and rows[0]["CURRENT"] == "5",
          f"a future timestamp: planned from 5 ({out.strip()})")
    check(broker_committed(BOOTSTRAP, group, TOPIC)[1] == int(rows[0]["NEW"]) > 5,
          "a future timestamp: partition 1 at its high watermark")


def refused_while_a_member_runs(tmp):
    group = f"active-{RUN}"
    host = run_host(group, tmp, idle=False)
    deadline = time.time() + 60
    while handled(tmp, group) < 330 and time.time() < deadline and host.poll() is None:
        time.sleep(0.1)
    check(handled(tmp, group) == 330, "the member handled every record")
    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "earliest")
    check(code == 1 and f"cannot reset the offsets of group '{group}'" in err
          and "offsets can only be reset while the group has no members" in err,
          f"a reset while a member runs: refused with exit code 1 ({err.strip()})")
    if REAL:
        check("it is Stable with 1 member(s)" in err, "the refusal names the state and count")
        code, out, err = admin("describe", "--group", group, "--topic", TOPIC)
        check(code == 0 and "state Stable" in out and "members 1" in out
              and out.count("(client ") == 3,
              f"describe: Stable, 1 member owning every partition ({out.strip()})")
    host.terminate()
    host.wait(30)
    check(host.returncode == 0, "the member left gracefully")
    if not REAL:
        note("skipped on the embedded cluster: the reset after the member left (the mock keeps "
             "a group's membership and refuses commits from outside it: UNKNOWN_MEMBER_ID)")
        return
    code, out, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "earliest")
    check(code == 0, f"after the member left: the reset is done ({err.strip()})")
    check(broker_committed(BOOTSTRAP, group, TOPIC) == {0: 0, 1: 0, 2: 0},
          "after the member left: the broker holds 0 everywhere")


def bad_input(tmp):
    group = f"bad-{RUN}"
    code, _, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "newest")
    check(code == 2 and f"invalid offset target 'newest': {FORMS}" in err,
          f"a bad --to: exit code 2, naming the value and the forms ({err.strip()})")
    code, _, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "earliest",
                         "--partitions", "0,9")
    check(code == 2 and f"topic '{TOPIC}' has no partition 9 (it has partitions 0..2)" in err,
          f"a partition outside the topic: exit code 2 ({err.strip()})")
    code, _, err = admin("reset", "--group", group, "--topic", TOPIC, "--to", "earliest",
                         "--partitions", "0,x")
    check(code == 2 and "invalid --partitions '0,x'" in err, f"bad --partitions ({err.strip()})")
    missing = f"missing-{RUN}"
    code, _, err = admin("describe", "--group", group, "--topic", missing)
    check(code == 1 and f"topic '{missing}' does not exist" in err,
          f"an unknown topic: exit code 1, named ({err.strip()})")
    code, _, err = admin("reset", "--group", group, "--to", "earliest")
    check(code == 2 and "reset needs --topic" in err, f"reset without --topic ({err.strip()})")
    code, _, err = admin("frobnicate", "--group", group)
    check(code == 2 and "invalid admin command 'frobnicate'" in err,
          f"an unknown admin command ({err.strip()})")
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    proc = subprocess.run([KT_HOST, "admin", "describe", "--group", group], capture_output=True,
                          text=True, timeout=30, env=env)
    check(proc.returncode == 2 and "admin needs --bootstrap" in proc.stderr,
          f"no bootstrap: exit code 2 ({proc.stderr.strip()})")


try:
    if not BOOTSTRAP:
        BOOTSTRAP = start_cluster(KT_CLUSTER, {TOPIC: 3})
    with tempfile.TemporaryDirectory() as tmp:
        for case in (describe_after_a_commit, resets, refused_while_a_member_runs, bad_input):
            timed(case, tmp)
finally:
    stop_all()

print(f"kt_host_admin_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
