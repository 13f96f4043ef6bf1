#!/usr/bin/env python3
"""The http-server example end to end: while it produces N messages to a kt-cluster process (or
$KT_BOOTSTRAP), /metrics answers and parses back (Prometheus text format), both triggers reach N handled, /triggers
and /healthz agree, pausing one trigger stops its count while the other finishes, resuming lets it
finish (the committed offsets it exports are the broker's, read back with confluent-kafka),
unknown triggers and wrong methods are refused, and SIGTERM exits 0.
Usage: http_server_test.py <path-to-http-server> <path-to-kt-cluster>"""
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from kt_processes import (broker_committed, check, failures, note, processes, start_cluster,
                          stop_all, timed)

HTTP_SERVER, KT_CLUSTER = sys.argv[1:3]
BOOTSTRAP = os.environ.get("KT_BOOTSTRAP", "")  # real brokers; otherwise a kt-cluster process
RUN = f"{os.getpid()}-{int(time.time())}"
TOPIC, GROUP, PARTITIONS = f"http-demo-{RUN}", f"http-{RUN}", 3
N = 3000
DEADLINE = 120  # seconds per wait: generous for sanitizer builds; no test asserts a duration


# ---- Prometheus text exposition format, read back ----

SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def parse_labels(text):
    labels, i = {}, 0
    while i < len(text):
        equals = text.index("=", i)
        name = text[i:equals]
        if text[equals + 1] != '"':
            raise ValueError(f"unquoted label value in {{{text}}}")
        i, value = equals + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                value.append(ESCAPES[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        if name in labels:
            raise ValueError(f"duplicate label {name}")
        labels[name] = "".join(value)
        i += 1
        if i < len(text):
            if text[i] != ",":
                raise ValueError(f"expected ',' in {{{text}}}")
            i += 1
    return labels


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return name


def parse_exposition(text):
    """[(name, labels, value)] and {family: type}; raises on a malformed line, a repeated TYPE or
    a sample before its family's TYPE."""
    samples, types = [], {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            if family in types:
                raise ValueError(f"second TYPE for {family}")
            types[family] = kind
        elif line.startswith("#"):
            continue
        else:
            match = SAMPLE_LINE.match(line)
            if not match:
                raise ValueError(f"malformed sample line {line!r}")
            name, labels, value = match.groups()
            if family_of(name, types) not in types:
                raise ValueError(f"{name} has no TYPE before it")
            samples.append((name, parse_labels(labels or ""), float(value)))
    return samples, types


def value(samples, name, **labels):
    """The value of the one sample `name` with these labels, or None."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    if len(found) > 1:
        raise ValueError(f"{len(found)} samples of {name} {labels}")
    return found[0] if found else None


# ---- the server process ----

class server:
    def __init__(self, tmp):
        args = [HTTP_SERVER, "--produce", str(N), "--port", "0", "--bootstrap", BOOTSTRAP,
                "--topic", TOPIC, "--partitions", str(PARTITIONS), "--group", GROUP]
        self.stderr = open(os.path.join(tmp, "http-server.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        processes.append(self.proc)
        self.port = None
        deadline = time.time() + DEADLINE
        while self.port is None and time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            line = self.proc.stdout.readline() if ready else ""
            if line.startswith("listening: 127.0.0.1:"):
                self.port = int(line.rsplit(":", 1)[1])
            elif not line and self.proc.poll() is not None:
                break
        if self.port is None:
            raise RuntimeError("http-server did not print 'listening: 127.0.0.1:<port>'")
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.requests = 0

    def request(self, method, path, headers=None):
        """(status, content type, body) over one keep-alive connection."""
        self.connection.request(method, path, headers=headers or {})
        response = self.connection.getresponse()
        body = response.read().decode()
        self.requests += 1
        return response.status, response.getheader("Content-Type", ""), body

    def metrics(self):
        status, content_type, body = self.request("GET", "/metrics")
        if status != 200 or not content_type.startswith("text/plain; version=0.0.4"):
            raise RuntimeError(f"/metrics answered {status} {content_type!r}")
        return parse_exposition(body)[0]

    def handled(self, trigger):
        return int(value(self.metrics(), "kt_trigger_handled_total", trigger=trigger) or 0)

    def wait_for(self, what, condition):
        """Scrapes /metrics until condition(samples) holds; False after DEADLINE."""
        deadline = time.time() + DEADLINE
        while time.time() < deadline:
            if condition(self.metrics()):
                check(True, what)
                return True
            time.sleep(0.05)
        check(False, f"{what} within {DEADLINE} s")
        return False


def handled_of(samples, trigger):
    return value(samples, "kt_trigger_handled_total", trigger=trigger) or 0


# ---- the cases, in order on one server ----

def metrics_are_well_formed(s):
    status, _, body = s.request("GET", "/metrics")
    samples, types = parse_exposition(body)  # raises on any format error
    check(status == 200, "/metrics answers 200 and parses back")
    counters = [f for f, t in types.items() if t == "counter"]
    check(all(f.endswith("_total") for f in counters), "every counter family ends in _total")
    check(types.get("kt_trigger_handler_duration_seconds") == "histogram",
          "handler durations are a histogram")
    partition_families = ("kt_partition_committed_offset", "kt_partition_lag",
                          "kt_partition_high_watermark")
    s.wait_for("partition offsets are exported",
               lambda m: any(n in partition_families for n, _, _ in m))
    offsets = [v for n, _, v in s.metrics() if n in partition_families]
    check(offsets and all(v >= 0 for v in offsets),
          f"partition offsets are exported, none as -1 ({len(offsets)} samples)")


def pause_stops_one_trigger_while_the_other_finishes(s):
    s.wait_for("'slow' handles its first message", lambda m: handled_of(m, "slow") > 0)
    status, _, _ = s.request("POST", "/triggers/slow/pause")
    check(status == 200, "POST /triggers/slow/pause answers 200")
    samples = s.metrics()
    check(value(samples, "kt_trigger_paused", trigger="slow") == 1, "kt_trigger_paused{slow} is 1")
    check(value(samples, "kt_trigger_paused", trigger="fast") == 0, "kt_trigger_paused{fast} is 0")
    s.wait_for(f"'fast' handles all {N} while 'slow' is paused", lambda m: handled_of(m, "fast") == N)
    s.wait_for("'slow' has no handler running",
               lambda m: value(m, "kt_trigger_in_flight", trigger="slow") == 0)
    settled = s.handled("slow")
    check(0 < settled < N, f"'slow' was paused part-way ({settled} of {N})")
    # Not a timing assertion: the count must stay put over a second of scrapes while paused.
    observed_until = time.time() + 1
    counts = {s.handled("slow")}
    while time.time() < observed_until:
        counts.add(s.handled("slow"))
        time.sleep(0.05)
    check(counts == {settled}, f"'slow' handles nothing while paused ({sorted(counts)})")
    check(s.handled("fast") == N, f"'fast' handled exactly {N}")


def triggers_json_describes_the_host(s):
    status, content_type, body = s.request("GET", "/triggers")
    check(status == 200 and content_type.startswith("application/json"), "GET /triggers is JSON")
    snapshot = json.loads(body)
    triggers = {t["name"]: t for t in snapshot["triggers"]}
    check(set(triggers) == {"fast", "slow"}, f"/triggers lists fast and slow ({sorted(triggers)})")
    check(triggers["fast"]["handled"] == N, "/triggers: fast handled N")
    check(triggers["slow"]["paused"] and not triggers["fast"]["paused"], "/triggers: slow is paused")
    check(triggers["fast"]["handler_duration"]["count"] == N, "/triggers: fast's histogram counts N")
    check(len(triggers["fast"]["partitions"]) > 0, "/triggers: fast holds partitions")
    consumers = snapshot["consumers"]
    check(len(consumers) == 1 and consumers[0]["triggers"] == 2,
          "/triggers: one consumer shared by both triggers")
    check(snapshot["health"]["ready"], "/triggers: health says ready")


def histogram_matches_the_counter(s):
    samples = s.metrics()
    buckets = [v for n, l, v in samples
               if n == "kt_trigger_handler_duration_seconds_bucket" and l.get("trigger") == "fast"]
    count = value(samples, "kt_trigger_handler_duration_seconds_count", trigger="fast")
    inf = value(samples, "kt_trigger_handler_duration_seconds_bucket", trigger="fast", le="+Inf")
    check(buckets == sorted(buckets), "fast's buckets are cumulative")
    check(inf == count == N, f"fast's +Inf bucket and _count are N ({inf}, {count})")


def resume_lets_it_finish(s):
    status, _, _ = s.request("POST", "/triggers/%73low/resume")  # percent-encoded "slow"
    check(status == 200, "POST /triggers/%73low/resume answers 200")
    s.wait_for(f"'slow' handles all {N} after resuming", lambda m: handled_of(m, "slow") == N)
    check(value(s.metrics(), "kt_trigger_paused", trigger="slow") == 0, "kt_trigger_paused{slow} is 0")
    committed_all = lambda m: sum(v for n, l, v in m if n == "kt_partition_committed_offset"
                                  and l.get("trigger") == "slow") == N
    s.wait_for(f"kt_partition_committed_offset of 'slow' sums to {N}", committed_all)
    exported = {int(l["partition"]): int(v) for n, l, v in s.metrics()
                if n == "kt_partition_committed_offset" and l.get("trigger") == "slow"}
    broker = broker_committed(BOOTSTRAP, GROUP, TOPIC)
    check(exported == broker, f"the exported committed offsets are the broker's ({exported} vs "
                              f"{broker})")


def health_endpoints(s):
    status, _, body = s.request("GET", "/healthz")
    check(status == 200 and body.strip() == "ok", f"/healthz answers 200 ok ({status} {body.strip()!r})")
    status, _, body = s.request("GET", "/readyz")
    check(status == 200 and body.strip() == "ready", f"/readyz answers 200 ready ({status})")


def dashboard_page(s):
    """GET / is the dashboard: HTML that fetches nothing from elsewhere (the browser test,
    dashboard_browser, checks what it shows)."""
    status, content_type, body = s.request("GET", "/")
    check(status == 200 and content_type.startswith("text/html") and "<title>kafka-triggers</title>"
          in body and 'fetch("triggers"' in body and "http://" not in body and "https://" not in body,
          f"GET / answers the dashboard page ({status} {content_type!r}, {len(body)} characters)")


def refusals(s):
    cases = [("POST", "/triggers/no-such-trigger/pause", 404), ("POST", "/triggers/slow/stop", 404),
             ("GET", "/triggers/slow/pause", 405), ("POST", "/metrics", 405), ("GET", "/nowhere", 404),
             ("POST", "/", 405)]
    for method, path, expected in cases:
        status, _, _ = s.request(method, path)
        check(status == expected, f"{method} {path} answers {expected} ({status})")
    # A page of another site, opened in the operator's browser, cannot pause a trigger (browsers
    # send Origin with a cross-site POST); the dashboard's own requests are same-origin.
    status, _, _ = s.request("POST", "/triggers/slow/pause", {"Origin": "http://evil.example"})
    check(status == 403 and value(s.metrics(), "kt_trigger_paused", trigger="slow") == 0,
          f"a cross-origin POST is refused with 403 and pauses nothing ({status})")
    status, _, _ = s.request("POST", "/triggers/slow/resume",
                             {"Origin": f"http://127.0.0.1:{s.port}"})
    check(status == 200, f"a same-origin POST is served ({status})")


def main():
    global BOOTSTRAP
    if not BOOTSTRAP:
        BOOTSTRAP = start_cluster(KT_CLUSTER, {TOPIC: PARTITIONS})
    with tempfile.TemporaryDirectory() as tmp:
        try:
            s = server(tmp)
        except BaseException:  # e.g. no http-server binary: the cluster must not outlive the test
            stop_all()
            raise
        note(f"http-server listening on port {s.port}")
        try:
            for case in (metrics_are_well_formed, pause_stops_one_trigger_while_the_other_finishes,
                         triggers_json_describes_the_host, histogram_matches_the_counter,
                         resume_lets_it_finish, health_endpoints, dashboard_page, refusals):
                timed(case, s)
            note(f"{s.requests} requests over one keep-alive connection")
            s.connection.close()
            s.proc.send_signal(signal.SIGTERM)
            try:
                code = s.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                code = "still running"
            check(code == 0, f"SIGTERM: http-server exits 0 ({code})")
        finally:
            stop_all()
            s.stderr.close()
            if failures:
                with open(os.path.join(tmp, "http-server.log")) as log:
                    print("http-server stderr (tail):\n" + "".join(log.readlines()[-30:]))
    print(f"http_server_test: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


main()
