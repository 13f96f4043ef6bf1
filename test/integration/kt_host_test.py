#!/usr/bin/env python3
"""CLI test of kt-host on its embedded cluster: every trigger handles every message once, the
broker holds commits of every message (read back with confluent-kafka) and the summary's
committed offsets are exactly those, sharing modes give the documented consumer counts, --config
runs a file's triggers, and bad options and files fail clearly (naming the JSON path, never a
secret). kt-host runs against a kt-cluster process (which outlives it, so its commits can be read
back), against $KT_BOOTSTRAP when set, and once on its own embedded cluster.
Usage: kt_host_test.py <path-to-kt-host> <path-to-kt-cluster>"""
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import kt_processes
from kt_processes import (broker_committed, check, failures, kill_cluster, metadata_max_bytes,
                          start_cluster, stop_all, summary_committed)

KT_HOST, KT_CLUSTER = sys.argv[1:3]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")  # real brokers; otherwise a kt-cluster process
RUN = f"{os.getpid()}-{int(time.time())}"  # topics and groups are new on every run
SHARINGS = ("per_group", "per_topic", "off")
TOPICS = {f"config-orders-{RUN}": 3, f"scraped-{RUN}": 2, f"kip848-{RUN}": 3}
for sharing in SHARINGS:
    TOPICS.update({f"orders-{sharing}-{RUN}": 3, f"audit-{sharing}-{RUN}": 2})


def check_commits(label, summary, group, topic, expected):
    kt_processes.check_commits(BOOTSTRAP, label, summary, group, topic, expected)


def run_host(tmp, sharing, idle="1"):
    output = os.path.join(tmp, f"out-{sharing}.jsonl")
    summary = os.path.join(tmp, f"summary-{sharing}.json")
    orders, audit = f"orders-{sharing}-{RUN}", f"audit-{sharing}-{RUN}"
    group = f"kt-host-{sharing}-{RUN}"
    args = [KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", f"{orders}:3", "--topic", f"{audit}:2",
            "--produce", "300", "--triggers", "2", "--sharing", sharing, "--group", group,
            "--exit-when-idle", idle, "--output", output, "--summary-json", summary,
            "--log-level", "warning",
            # A member joining late makes the cluster wait for the others' rejoin, up to the
            # session timeout: 6 s rather than librdkafka's 45 s.
            "--property", "session.timeout.ms=6000"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    check(proc.returncode == 0, f"{sharing}: exit code 0 (stderr: {proc.stderr[-300:]})")
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
        if sharing != "off":
            check_commits(sharing, s, group, topic, 300)
            continue
        # off: a group per trigger, "<group>.<trigger>"; the summary holds the lowest of the two.
        per_group = [broker_committed(BOOTSTRAP, f"{group}.{topic}.t{i}", topic) for i in (0, 1)]
        check(all(sum(b.values()) == 300 for b in per_group),
              f"off: both groups' committed offsets of {topic} sum to 300 on the broker ({per_group})")
        lowest = {p: min(b.get(p, -1) for b in per_group) for p in per_group[0]}
        ours = summary_committed(s, topic)
        check(ours == lowest, f"off: the summary's committed offsets are the broker's ({ours})")
    return s


def run_embedded(tmp):
    """Without --bootstrap kt-host starts its own embedded cluster and says where; at the default
    log level (as in the quick start) librdkafka warns about nothing in its configuration."""
    output = os.path.join(tmp, "out-embedded.jsonl")
    proc = subprocess.run([KT_HOST, "--topic", "embedded:2", "--produce", "20",
                           "--exit-when-idle", "1", "--output", output],
                          capture_output=True, text=True, timeout=120)
    check(proc.returncode == 0 and proc.stdout.startswith("bootstrap: 127.0.0.1:"),
          f"embedded: exit code 0 and prints the embedded bootstrap ({proc.returncode}: "
          f"{proc.stdout[:60]!r} {proc.stderr[-300:]})")
    shown = proc.stdout + proc.stderr
    check("CONFWARN" not in shown and "[kt info] embedded cluster: 3 broker(s)" in proc.stderr,
          f"embedded: no librdkafka configuration warning in the demo's output "
          f"({[l for l in shown.splitlines() if 'librdkafka' in l][:3]})")
    with open(output) as f:
        handled = sum(1 for _ in f)
    check(handled == 20, f"embedded: the 20 produced messages handled ({handled})")


def write_config(tmp, name, config):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def run_config_file(tmp):
    """kt-host --config: the file's three triggers (record, sleep:<ms>, batch) on one consumer
    handle every produced message once; the brokers come from ${KAFKA_BOOTSTRAP_SERVERS}."""
    orders = f"config-orders-{RUN}"
    output, summary = os.path.join(tmp, "out-config.jsonl"), os.path.join(tmp, "summary-config.json")
    config = write_config(tmp, "good.json", {
        "common": {"bootstrap_servers": "${KAFKA_BOOTSTRAP_SERVERS}", "client_id": "kt-host-test",
                   "properties": {"session.timeout.ms": 6000}},
        "consumers": [{"name": "main", "group_id": f"kt-host-config-{RUN}", "topics": [orders]}],
        "triggers": [
            {"name": "billing", "consumer": "main", "topic": orders, "handler": "record",
             "ordering": "key", "max_in_flight": 8},
            {"name": "audit", "consumer": "main", "topic": orders, "handler": "sleep:1"},
            {"name": "bulk", "consumer": "main", "topic": orders, "handler": "batch",
             "batch": {"max_messages": 20, "max_wait_ms": 10}}]})
    args = [KT_HOST, "--config", config, "--bootstrap", BOOTSTRAP, "--topic", f"{orders}:3",
            "--produce", "200", "--exit-when-idle", "1", "--output", output,
            "--summary-json", summary, "--log-level", "warning"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    check(proc.returncode == 0, f"config: exit code 0 (stderr: {proc.stderr[-300:]})")
    seen = collections.Counter()
    with open(output) as f:
        for line in f:
            r = json.loads(line)
            seen[(r["trigger"], r["topic"], r["partition"], r["offset"])] += 1
    per_trigger = collections.Counter(trigger for trigger, _, _, _ in seen)
    check(per_trigger == {"billing": 200, "audit": 200, "bulk": 200},
          f"config: each of the file's 3 triggers handled the 200 messages ({dict(per_trigger)})")
    check(all(c == 1 for c in seen.values()), "config: no message handled twice")
    with open(summary) as f:
        s = json.load(f)
    check(s["consumers"] == 1, "config: the file's triggers share one consumer")
    check_commits("config", s, f"kt-host-config-{RUN}", orders, 200)


def check_config_errors(tmp):
    """A bad file fails with exit code 2 naming the JSON path, never the secret; dumps redact it."""
    secret = f"hunter2-{RUN}"
    env = dict(os.environ, KT_HOST_TEST_PASSWORD=secret)
    common = {"bootstrap_servers": "${KAFKA_BOOTSTRAP_SERVERS}",
              "security": {"protocol": "sasl_plaintext", "sasl_mechanism": "PLAIN",
                           "sasl_username": "svc", "sasl_password": "${KT_HOST_TEST_PASSWORD}"}}
    consumers = [{"name": "main", "group_id": "g"}]
    trigger = {"name": "t", "consumer": "main", "topic": "orders", "handler": "record"}
    cases = [
        ("bad-value.json", {"common": common, "consumers": consumers,
                            "triggers": [dict(trigger, max_in_flight=-3)]},
         "$.triggers[0].max_in_flight: expected a positive integer, got -3"),
        ("bad-handler.json", {"common": common, "consumers": consumers,
                              "triggers": [dict(trigger, handler="recrd")]},
         '$.triggers[0].handler: unknown handler "recrd"'),
        ("bad-secret.json", {"common": dict(common, properties={"ssl_key": secret}),
                             "consumers": consumers, "triggers": [trigger]},
         '$.common.properties["ssl_key"]: invalid value'),
    ]
    # A bootstrap nobody listens on: the file must fail before anything connects.
    for name, config, expected in cases:
        proc = subprocess.run([KT_HOST, "--config", write_config(tmp, name, config),
                               "--bootstrap", "127.0.0.1:9"],
                              capture_output=True, text=True, timeout=60, env=env)
        check(proc.returncode == 2 and expected in proc.stderr,
              f"{name}: exit code 2 and stderr names the path ({proc.returncode}: {proc.stderr.strip()})")
        check(secret not in proc.stderr + proc.stdout, f"{name}: the secret is not printed")
    good = write_config(tmp, "secret.json", {"common": common, "consumers": consumers,
                                             "triggers": [trigger]})
    dump = subprocess.run([KT_HOST, "--config", good, "--print-config"], capture_output=True,
                          text=True, timeout=30, env=env)
    check(dump.returncode == 0 and '"sasl.password":"***"' in dump.stdout and secret not in dump.stdout,
          f"--print-config redacts the secret ({dump.returncode}: {dump.stdout[:200]} {dump.stderr[-200:]})")
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps", "kt-host",
                           "example-config.json")
    shown = subprocess.run([KT_HOST, "--config", example, "--print-config"], capture_output=True,
                           text=True, timeout=30)
    check(shown.returncode == 0 and '"name":"billing"' in shown.stdout,
          f"the example config is valid ({shown.stderr.strip()})")
    mixed = subprocess.run([KT_HOST, "--config", good, "--ordering", "key"], capture_output=True,
                           text=True, timeout=30, env=env)
    check(mixed.returncode == 2 and "--ordering cannot be combined with --config" in mixed.stderr,
          f"trigger options are refused with --config ({mixed.stderr.strip()})")


def scrape(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def handled_total(metrics_text):
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("kt_trigger_handled_total{"))


def gauge(metrics_text, prefix):
    values = [float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
              if line.startswith(prefix)]
    return values[0] if values else None


def check_metrics_port():
    """--metrics-port serves /metrics and /healthz while kt-host runs; SIGTERM still drains."""
    topic = f"scraped-{RUN}"
    args = [KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", f"{topic}:2", "--produce", "200",
            "--triggers", "2", "--group", f"kt-host-metrics-{RUN}", "--metrics-port", "0",
            "--log-level", "warning"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stdout:
            if line.startswith("metrics: 127.0.0.1:"):
                port = int(line.rsplit(":", 1)[1])
                break
        check(port is not None, "--metrics-port 0 prints the bound port")
        if port is None:
            return
        deadline, total = time.time() + 90, 0
        while time.time() < deadline and total < 400:
            status, text = scrape(port, "/metrics")
            total = handled_total(text) if status == 200 else 0
            time.sleep(0.2)
        check(total == 400, f"/metrics counts 2 triggers x 200 handled ({total})")
        # The completion map budget is 75 % of what the broker says (read here with another
        # client); 3072 where it does not say. kafka-local.sh sets a non-default 8192.
        limit = metadata_max_bytes(BOOTSTRAP)
        expected = min(limit // 4 * 3, 32768) if limit is not None else 3072
        deadline, budget = time.time() + 30, None
        while time.time() < deadline and budget != expected:
            budget = gauge(scrape(port, "/metrics")[1], "kt_consumer_completion_map_budget_bytes{")
            time.sleep(0.2)
        check(budget == expected, f"completion map budget {budget} == {expected} "
                                  f"(offset.metadata.max.bytes {limit})")
        status, body = scrape(port, "/healthz")
        check(status == 200 and body.strip() == "ok", f"/healthz answers ok ({status} {body!r})")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    check(code == 0, f"kt-host with --metrics-port stops on SIGTERM with exit code 0 ({code})")


def run_consumer_protocol(tmp):
    """--group-protocol consumer (KIP-848: the broker assigns); classic-only properties refused."""
    topic, group = f"kip848-{RUN}", f"kt-host-kip848-{RUN}"
    output, summary = os.path.join(tmp, "out-kip848.jsonl"), os.path.join(tmp, "kip848.json")
    base = [KT_HOST, "--bootstrap", BOOTSTRAP, "--topic", f"{topic}:3", "--group", group,
            "--group-protocol", "consumer", "--log-level", "warning"]
    refused = subprocess.run(base + ["--property", "session.timeout.ms=6000"],
                             capture_output=True, text=True, timeout=120)
    check(refused.returncode == 2 and "session.timeout.ms" in refused.stderr and
          "group.protocol=consumer" in refused.stderr,
          f"consumer protocol: session.timeout.ms is refused by name ({refused.stderr.strip()[-200:]})")
    proc = subprocess.run(base + ["--produce", "300", "--triggers", "2", "--exit-when-idle", "1",
                                  "--output", output, "--summary-json", summary],
                          capture_output=True, text=True, timeout=120)
    check(proc.returncode == 0, f"consumer protocol: exit code 0 (stderr: {proc.stderr[-300:]})")
    seen = collections.Counter()
    with open(output) as f:
        for line in f:
            r = json.loads(line)
            seen[(r["trigger"], r["partition"], r["offset"])] += 1
    check(len(seen) == 600 and all(c == 1 for c in seen.values()),
          f"consumer protocol: 2 triggers x 300 handled once each ({len(seen)})")
    with open(summary) as f:
        check_commits("consumer protocol", json.load(f), group, topic, 300)


def refused_before_start(args, expected, what):
    """kt-host refuses `args` with exit code 2 and exactly `expected` on stderr, before any
    cluster starts: at once, no `bootstrap:` line (an embedded cluster prints one first)."""
    started = time.time()
    proc = subprocess.run([KT_HOST, *args], capture_output=True, text=True, timeout=60)
    took = time.time() - started
    check(proc.returncode == 2 and proc.stderr == f"kt-host: {expected}\n" and
          "bootstrap:" not in proc.stdout and took < 5,
          f"{what}: exit code 2, one line, no cluster started ({proc.returncode}, {took:.1f} s: "
          f"{proc.stdout[:80]!r} {proc.stderr[-300:]!r})")


def check_first_contact():
    """Invalid properties are refused before anything starts; unreachable brokers give one line
    naming them and why, with exit code 3, within the 10 s kt-host gives them."""
    refused_before_start(["--property", "foo.bar=1"],
                         "unknown librdkafka property 'foo.bar' (see CONFIGURATION.md of "
                         "librdkafka for valid names)", "an unknown --property")
    refused_before_start(["--property", "session.timeout.ms=soon"],
                         "invalid value for property 'session.timeout.ms': Invalid value for "
                         'configuration property "session.timeout.ms"', "an invalid --property value")
    refused_before_start(["--property", "enable.auto.commit=true"],
                         "property 'enable.auto.commit' is managed by kafka-triggers (offsets are "
                         "committed when handlers complete); remove it", "a managed --property")
    refused_before_start(["--group-protocol", "consumer", "--property", "heartbeat.interval.ms=500"],
                         "'heartbeat.interval.ms' is not supported with group.protocol=consumer "
                         "(KIP-848): the broker sets it ('group.consumer.heartbeat.interval.ms')",
                         "a classic-only --property under the consumer protocol")
    refused_before_start(["--metrics-port", "70000"],
                         "invalid --metrics-port 70000: use 0..65535 (see --help)",
                         "an out-of-range --metrics-port")
    started = time.time()
    proc = subprocess.run([KT_HOST, "--bootstrap", "127.0.0.1:1"], capture_output=True, text=True,
                          timeout=60)
    took = time.time() - started
    expected = ("kt-host: cannot reach Kafka at 127.0.0.1:1 within 10 s: Connect to "
                "ipv4#127.0.0.1:1 failed: Connection refused\n")
    check(proc.returncode == 3 and proc.stderr == expected and took < 15,
          f"--bootstrap 127.0.0.1:1: exit code 3 and one line naming the server and the refusal "
          f"({proc.returncode}, {took:.1f} s: {proc.stderr[-400:]!r})")


def check_cluster_dying_while_producing():
    """Regression: a kt-host whose cluster dies during --produce hung at start-up. The chain:
    produce() -> kt::producer::produce() waits while librdkafka's queue is full -> the queue
    drains only when records time out (message.timeout.ms, 300 s by default) -> then
    flush(60 s). Now records time out after 10 s and the first failure ends producing (exit 1,
    one error line). SIGTERM meanwhile ends it at once."""
    for stop in ("dies", "SIGTERM"):
        bootstrap, cluster = start_cluster(KT_CLUSTER, {f"doomed-{stop}-{RUN}": 3}, with_process=True)
        proc = subprocess.Popen([KT_HOST, "--bootstrap", bootstrap, "--topic", f"doomed-{stop}-{RUN}:3",
                                 "--produce", "3000000", "--log-level", "error"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        producing = proc.stdout.readline()  # kt-host says so before its first record
        check(producing.startswith("producing 3000000 messages per topic"),
              f"{stop}: kt-host says it is producing ({producing!r})")
        kill_cluster(cluster)
        killed = time.time()
        if stop == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        took = time.time() - killed
        if stop == "dies":
            check(proc.returncode == 1 and took < 30 and
                  "kt-host: error: producing failed: records not delivered within 10 s" in stderr,
                  f"the cluster dies while producing: kt-host ends with exit code 1 and says why "
                  f"({proc.returncode} after {took:.1f} s: {stderr[-300:]!r})")
        else:
            check(proc.returncode == -signal.SIGTERM and took < 10,
                  f"the cluster dies while producing: SIGTERM ends kt-host at once "
                  f"({proc.returncode} after {took:.1f} s)")


try:
    check_first_contact()
    check_cluster_dying_while_producing()
    if not BOOTSTRAP:
        BOOTSTRAP = start_cluster(KT_CLUSTER, TOPICS)
    with tempfile.TemporaryDirectory() as tmp:
        if not os.environ.get("KT_BOOTSTRAP"):
            run_embedded(tmp)
        check(run_host(tmp, "per_group")["consumers"] == 1, "per_group: one consumer for 4 triggers")
        # Two consumers in one group: the second join makes the embedded cluster rebalance (~5 s).
        check(run_host(tmp, "per_topic", idle="8")["consumers"] == 2,
              "per_topic: one consumer per topic")
        check(run_host(tmp, "off")["consumers"] == 4, "off: one consumer per trigger")
        run_config_file(tmp)
        check_config_errors(tmp)
        if os.environ.get("KT_BOOTSTRAP") and os.environ.get("KT_KAFKA_VERSION", "").startswith("3."):
            # Kafka 3.x serves KIP-848 only as early access, off.
            print("consumer protocol: skipped on the real broker (Kafka 3.x: KIP-848 needs 4)")
        else:
            run_consumer_protocol(tmp)
    check_metrics_port()
finally:
    stop_all()

bad_protocol = subprocess.run([KT_HOST, "--group-protocol", "new"], capture_output=True, text=True,
                              timeout=30)
check(bad_protocol.returncode == 2 and "--group-protocol 'new'" in bad_protocol.stderr,
      f"an invalid --group-protocol is refused by name ({bad_protocol.stderr.strip()})")
bad = subprocess.run([KT_HOST, "--sharing", "sometimes"], capture_output=True, text=True, timeout=30)
check(bad.returncode == 2 and "--sharing 'sometimes'" in bad.stderr,
      f"an invalid --sharing is refused by name ({bad.stderr.strip()})")
usage = subprocess.run([KT_HOST, "--help"], capture_output=True, text=True, timeout=30)
check(usage.returncode == 0 and all(o in usage.stdout for o in (
    "--bootstrap", "--topic", "--group", "--triggers", "--sharing", "--handler-ms", "--produce",
    "--output", "--exit-when-idle", "--summary-json", "--config", "--print-config",
    "--metrics-port", "--group-protocol")),
    "--help documents every option")

print(f"kt_host_test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
