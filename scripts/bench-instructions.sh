#!/usr/bin/env bash
# Instructions per message under callgrind: repeatable whatever else the machine is doing.
# Each variant runs on N and on 2N messages; its marginal cost (I(2N) - I(N)) / N leaves out
# start-up, the group join, idle turns and shutdown. The median of --repeat runs is reported.
#
#   scripts/bench-instructions.sh [--messages N] [--repeat R] [--json FILE] [--only a,b,...]
#
# Variants: raw (a plain librdkafka at-least-once loop, the ceiling), kt1 (kt-host, 1 no-op
# trigger), kt8 and kt100 (8 and 100 triggers sharing one consumer; also per handler call),
# key (1 trigger, ordering::key), hop (kt::spsc_channel push -> parked coroutine, alone).
# kafka-triggers runs on one shard so that the variants compare like with like. Needs valgrind and
# Debian's python3-confluent-kafka (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

messages=20000
repeat=3
json="perf/results/$(date +%F)-$(hostname -s)-instructions.json"
only="raw,kt1,kt8,kt100,key,hop"
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench-instructions: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v valgrind > /dev/null || { echo "bench-instructions: valgrind is not installed (scripts/setup.sh)" >&2; exit 2; }

cmake --preset release > /dev/null
cmake --build --preset release --target kt-host kt-cluster raw_consume_loop channel_hop_loop > /dev/null
bin=build/release
work=$(mktemp -d)
cluster_pid=
cleanup() { [ -n "$cluster_pid" ] && kill "$cluster_pid" 2> /dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin/apps/kt-cluster/kt-cluster" --topic small:6 --topic large:6 > "$work/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 100); do grep -q '^bootstrap: ' "$work/cluster.log" && break; sleep 0.1; done
bootstrap=$(grep '^bootstrap: ' "$work/cluster.log" | head -1 | cut -d' ' -f2)
[ -n "$bootstrap" ] || { echo "bench-instructions: kt-cluster did not start:" >&2; cat "$work/cluster.log" >&2; exit 1; }

# N keyed 100-byte messages (1000 keys) on "small", 2N on "large".
/usr/bin/python3 - "$bootstrap" "$messages" << 'PY'
import sys
from confluent_kafka import Producer
bootstrap, n = sys.argv[1], int(sys.argv[2])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 3})
for topic, count in (("small", n), ("large", 2 * n)):
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=str(i % 1000), value=b"x" * 100)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10000 == 0:
            producer.poll(0)
left = producer.flush(60)
sys.exit(f"bench-instructions: {left} message(s) not produced" if left else 0)
PY

# instructions VARIANT SIZE RUN COMMAND...: runs COMMAND under callgrind, prints its total.
instructions() {
  local out="$work/$1.$2.$3.callgrind"
  shift 3
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" > /dev/null 2> "$out.log" ||
    { echo "bench-instructions: failed: $*" >&2; tail -5 "$out.log" >&2; exit 1; }
  awk '/^summary:/ { print $2; exit }' "$out"
}

# command VARIANT TOPIC COUNT RUN: the command line of one run.
command_of() {
  local variant=$1 topic=$2 count=$3 run=$4
  local kt=("$bin/apps/kt-host/kt-host" --bootstrap "$bootstrap" --topic "$topic:6" --shards 1
            --group "kt-$variant-$topic-$run" --exit-when-idle 2 --log-level warning)
  case "$variant" in
    raw) echo "$bin/perf/raw_consume_loop" "$bootstrap" "$topic" "raw-$topic-$run" "$count" ;;
    kt1) echo "${kt[@]}" ;;
    kt8) echo "${kt[@]}" --triggers 8 ;;
    kt100) echo "${kt[@]}" --triggers 100 ;;
    key) echo "${kt[@]}" --ordering key ;;
    hop) echo "$bin/perf/channel_hop_loop" "$count" ;;
  esac
}

calls_per_message() { case "$1" in kt8) echo 8 ;; kt100) echo 100 ;; *) echo 1 ;; esac; }

results="$work/results.tsv"
: > "$results"
IFS=, read -r -a variants <<< "$only"
for variant in "${variants[@]}"; do
  marginals=()
  for run in $(seq "$repeat"); do
    # shellcheck disable=SC2046 # the command line is split on purpose
    small=$(instructions "$variant" small "$run" $(command_of "$variant" small "$messages" "$run"))
    # shellcheck disable=SC2046
    large=$(instructions "$variant" large "$run" $(command_of "$variant" large $((2 * messages)) "$run"))
    if [ "$large" -le "$small" ]; then
      # The 2N run cost no more than the N run: its wall-clock work (statistics timer, idle
      # turns) swamped the difference. Not a measurement: said, and left out of the median.
      echo "bench-instructions: $variant run $run invalid (N: $small, 2N: $large instructions); left out" >&2
      continue
    fi
    marginals+=($(( (large - small) / messages )))
  done
  [ "${#marginals[@]}" -gt 0 ] || { echo "bench-instructions: $variant: no valid run" >&2; exit 1; }
  median=$(printf '%s\n' "${marginals[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  printf '%s\t%s\t%s\t%s\n' "$variant" "$median" "$(calls_per_message "$variant")" "${marginals[*]}" >> "$results"
done

/usr/bin/python3 - "$results" "$json" "$messages" "$repeat" << 'PY'
import datetime, json, os, platform, sys
results, out, messages, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
what = {"raw": "raw librdkafka loop (consumer_poll + offset_store)", "kt1": "kt-host, 1 no-op trigger",
        "kt8": "kt-host, 8 triggers sharing a consumer", "kt100": "kt-host, 100 triggers sharing a consumer",
        "key": "kt-host, 1 trigger, ordering::key", "hop": "kt::spsc_channel hop to a parked coroutine"}
rows = []
for line in open(results):
    variant, median, calls, runs = line.rstrip("\n").split("\t")
    rows.append({"variant": variant, "what": what[variant], "instructions_per_message": int(median),
                 "instructions_per_handler_call": int(median) // int(calls),
                 "runs": [int(r) for r in runs.split()]})
raw = next((r["instructions_per_message"] for r in rows if r["variant"] == "raw"), None)
print(f"instructions per message, marginal over {messages} messages, median of {repeat} run(s):")
print(f"  {'variant':8s} {'per message':>12s} {'per call':>10s} {'x raw':>7s}  runs")
for r in rows:
    ratio = f"{r['instructions_per_message'] / raw:.2f}" if raw and r["variant"] in ("kt1", "key") else ""
    if ratio: r["ratio_to_raw"] = float(ratio)
    print(f"  {r['variant']:8s} {r['instructions_per_message']:12d} {r['instructions_per_handler_call']:10d} "
          f"{ratio:>7s}  {' '.join(map(str, r['runs']))}   {r['what']}")
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": platform.node(), "messages": messages, "repeat": repeat,
           "method": "callgrind total instructions, (I(2N) - I(N)) / N, one shard", "results": rows},
          open(out, "w"), indent=2)
print(f"json: {out}")
PY
