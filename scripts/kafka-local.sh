#!/usr/bin/env bash
# Runs a real single-node Apache Kafka (KRaft, broker+controller; 4.4.0 unless $KT_KAFKA_VERSION
# says otherwise) on loopback for tests:
#   scripts/kafka-local.sh start|stop|restart|status   (restart keeps the port and the data)
# Kafka's jars are fetched once with Maven into a cache outside the repo ($KT_KAFKA_CACHE,
# default ~/.cache/kafka-triggers); state and logs live under build/kafka-local. `start` prints
# `bootstrap: 127.0.0.1:<port>`. Exit code 3 means "no Java or Maven here": callers skip.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${KT_KAFKA_VERSION:-4.4.0}"
cache="${KT_KAFKA_CACHE:-$HOME/.cache/kafka-triggers}/kafka-$version"
state="${KT_KAFKA_DIR:-$PWD/build/kafka-local}"
pidfile="$state/kafka.pid"
portfile="$state/port"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fetch() {
    [ -f "$cache/complete" ] && return
    mkdir -p "$cache"
    cat > "$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafka-triggers</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
    echo "kafka-local: fetching Apache Kafka $version with Maven into $cache" >&2
    mvn -q -B -f "$cache/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$cache/libs" >&2
    touch "$cache/complete"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

configure() {
    local port="$1" controller_port="$2"
    mkdir -p "$state"
    cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# The consumer protocol (KIP-848): the broker owns session and heartbeat. Short, as the classic
# protocol's tests ask for (session.timeout.ms=6000), so a killed member leaves within seconds.
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
# A transaction left open by a killed producer is aborted within a second of its timeout.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
log.segment.bytes=1048576
# Not the default (4096), so tests see that completion map budgets come from the broker.
offset.metadata.max.bytes=8192
log.retention.check.interval.ms=60000
PROPS
    # Kafka logs through slf4j -> reload4j (log4j.properties); Kafka 4 also carries log4j2, which
    # wants a configuration of its own.
    cat > "$state/log4j2.properties" <<LOG2
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
LOG2
    cat > "$state/log4j.properties" <<LOG
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$state/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
LOG
}

java_run() {
    java -Xms256m -Xmx512m -Dlog4j.configuration="file:$state/log4j.properties" \
        -Dlog4j2.configurationFile="$state/log4j2.properties" -cp "$cache/libs/*" "$@"
}

start() {
    if ! command -v java > /dev/null || ! command -v mvn > /dev/null; then
        echo "kafka-local: skipped: Java or Maven is not installed" >&2
        exit 3
    fi
    if running; then
        echo "bootstrap: 127.0.0.1:$(cat "$portfile")"
        return
    fi
    fetch
    local port controller_port
    port=$(free_port)
    controller_port=$(free_port)
    rm -rf "$state/data"
    configure "$port" "$controller_port"
    java_run kafka.tools.StorageTool format --ignore-formatted -t "$(java_run kafka.tools.StorageTool random-uuid)" \
        -c "$state/server.properties" > "$state/format.log" 2>&1
    launch "$port"
}

# Starts the formatted broker of $state on `port` and waits until it answers metadata requests.
launch() {
    local port="$1" started
    started=$(date +%s.%N)
    nohup java -Xms256m -Xmx512m -Dlog4j.configuration="file:$state/log4j.properties" \
        -Dlog4j2.configurationFile="$state/log4j2.properties" \
        -cp "$cache/libs/*" kafka.Kafka "$state/server.properties" > "$state/stdout.log" 2>&1 &
    echo $! > "$pidfile"
    echo "$port" > "$portfile"
    for _ in $(seq 1 120); do
        if kcat -L -b "127.0.0.1:$port" -m 2 > /dev/null 2>&1; then
            echo "kafka-local: broker up in $(python3 -c "print(round($(date +%s.%N) - $started, 1))") s (logs: $state)" >&2
            echo "bootstrap: 127.0.0.1:$port"
            return
        fi
        running || { echo "kafka-local: broker exited; see $state/kafka.log" >&2; exit 1; }
        sleep 0.5
    done
    echo "kafka-local: broker did not answer metadata requests within 60 s; see $state/kafka.log" >&2
    stop
    exit 1
}

stop() {
    running || { rm -f "$pidfile"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "kafka-local: stopped" >&2; return 0; }
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "kafka-local: killed after 30 s" >&2
}

status() {
    if running; then
        echo "bootstrap: 127.0.0.1:$(cat "$portfile")"
    else
        echo "kafka-local: not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    restart)
        [ -f "$portfile" ] || { echo "kafka-local: never started" >&2; exit 1; }
        stop
        launch "$(cat "$portfile")"
        ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
