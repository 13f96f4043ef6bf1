// kt::metrics_snapshot: what a trigger_host is doing (per trigger, consumer and producer), its
// health and scaling advice, and their Prometheus text and JSON renderings.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kt {

/// Handler durations (from start to finish of a message's work, retries included) in fixed
/// buckets, like a Prometheus histogram.
struct duration_histogram {
    /// Upper bounds in seconds; counts has one more bucket for +Inf.
    static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    std::array<std::uint64_t, bounds.size() + 1> counts{};  ///< per bucket, not cumulative
    std::uint64_t count = 0;
    double sum_seconds = 0;
};

/// One partition as one trigger sees it.
struct partition_metrics {
    std::string topic;
    std::int32_t partition = 0;
    std::size_t backlog = 0;           ///< this trigger's delivered-but-unfinished messages
    bool paused = false;               ///< held back by backpressure (any trigger's backlog)
    std::int64_t committed = -1;       ///< broker-acknowledged commit of the consumer; -1: none
    std::int64_t high_watermark = -1;  ///< last known end of the partition; -1: unknown
    std::int64_t lag = -1;             ///< high_watermark − committed; -1: unknown
    /// Bytes of the completion map in the partition's last commit (what finished above it).
    std::size_t completion_map_bytes = 0;
};

struct trigger_metrics {
    std::string name;
    std::string topic;
    std::string group;
    std::uint64_t handled = 0;  ///< messages whose handler returned normally
    std::uint64_t failed = 0;   ///< failed for good (after retries), dead-lettered or not
    std::uint64_t retried = 0;  ///< retry attempts
    std::uint64_t dead_lettered = 0;
    std::uint64_t in_flight = 0;          ///< handlers running now
    double oldest_in_flight_seconds = 0;  ///< age of the longest-running handler; 0: none
    bool paused = false;                  ///< paused by pause_trigger()
    duration_histogram handler_duration;
    std::vector<partition_metrics> partitions;  ///< the partitions this member holds
};

/// A broker as one consumer's librdkafka sees it (from its statistics).
struct broker_metrics {
    std::string name;   ///< "host:port/id"
    std::string state;  ///< "UP", "DOWN", "CONNECT", ...
    double rtt_avg_seconds = 0;
};

struct consumer_metrics {
    std::string group;
    std::string client;  ///< librdkafka's client instance name, e.g. "rdkafka#consumer-3"
    std::size_t triggers = 0;
    std::vector<std::string> topics;
    std::size_t assigned_partitions = 0;
    std::uint64_t rebalances = 0;        ///< assign, revoke and lost callbacks
    double rebalance_seconds_total = 0;  ///< time spent inside them (revoke drains included)
    double last_rebalance_seconds = 0;
    std::uint64_t recreations = 0;  ///< clients replaced after a fatal error or outage
    std::uint64_t commits = 0;      ///< commit requests sent (periodic, requested, revoke, final)
    bool recovering = false;        ///< no broker reachable, or being recreated
    std::string recovery_reason;    ///< why, while recovering
    unsigned threads = 0;           ///< its poll thread + librdkafka's main and broker threads
    /// How long its poll thread has not turned, beyond the bounded step it is in (a rebalance
    /// callback may take up to 2 × revoke_drain_timeout + 5 s); about 0 while it runs.
    double poll_stalled_seconds = 0;
    /// The longest an assigned partition with messages beyond those delivered has delivered
    /// nothing (held back behind a handler or a retry, a completion map that does not fit, a
    /// fetch that never comes), and which one ("topic[partition]"); partitions of a trigger
    /// paused by pause_trigger() do not count.
    double delivery_stalled_seconds = 0;
    std::string stalled_partition;
    /// Bytes a partition's completion map may take: 75 % of the brokers' offset.metadata.max.bytes
    /// (asked once per client; 3072 until answered, and where the broker does not say).
    std::size_t completion_map_budget_bytes = 0;
    // From librdkafka's statistics (statistics.interval.ms); zero until the first report.
    std::int64_t consumer_lag = 0;  ///< summed over assigned partitions
    std::uint64_t rxmsgs = 0;       ///< messages fetched since the client started
    std::int64_t fetchq_cnt = 0;    ///< messages fetched and waiting in librdkafka's queues
    double consume_rate = 0;        ///< messages fetched per second, over the last interval
    double lag_rate = 0;            ///< change of consumer_lag per second, over the last interval
    std::string group_state;        ///< librdkafka's cgrp join state, e.g. "steady"
    std::vector<broker_metrics> brokers;
};

struct producer_metrics {
    std::string name;  ///< librdkafka's client instance name
    std::uint64_t delivered = 0;
    std::uint64_t failed = 0;
    std::size_t queue_depth = 0;
};

/// Recommended group size from lag and throughput (DESIGN: consumers ≤ partitions).
struct scaling_advice {
    std::string group;
    std::size_t partitions = 0;           ///< of the group's topics (as far as this member knows)
    std::size_t members = 0;              ///< estimated: partitions / partitions held here
    std::size_t recommended_members = 0;  ///< never more than partitions
    std::int64_t lag = 0;
    double consume_rate = 0;
    double lag_rate = 0;
    std::string reason;
};

/// When a host counts as unhealthy, and when scaling advice says "more".
struct health_thresholds {
    /// Oldest in-flight handler older than this, or a partition with messages waiting that
    /// delivered nothing for this long.
    std::chrono::milliseconds stuck_after{60000};
    std::chrono::milliseconds poll_stall_after{5000};  ///< a poll thread silent for longer
    std::int64_t max_lag = 100000;                     ///< a consumer's lag above this
    std::int64_t scale_up_lag = 10000;                 ///< lag above this, growing: recommend more
};

struct health_report {
    bool ready = false;    ///< every consumer assigned or waiting for an assignment
    bool healthy = false;  ///< ready, and none recovering, stuck or lagging past thresholds
    std::vector<std::string> reasons;  ///< why not ready or not healthy
};

struct metrics_snapshot {
    std::chrono::system_clock::time_point taken;
    unsigned process_threads = 0;
    std::vector<trigger_metrics> triggers;
    std::vector<consumer_metrics> consumers;
    std::vector<producer_metrics> producers;
    std::vector<scaling_advice> scaling;
    health_report health;
};

/// Prometheus text exposition format 0.0.4 (`kt_trigger_handled_total{trigger="..",topic=".."}`
/// and so on); label values escaped.
std::string to_prometheus(const metrics_snapshot& snapshot);
/// The snapshot as JSON (for `GET /triggers`).
std::string to_json(const metrics_snapshot& snapshot);

/// Counters of one trigger, summed over shards.
struct trigger_stats {
    std::string name;
    std::string topic;
    std::uint64_t handled = 0;        ///< messages whose handler returned normally
    std::uint64_t failed = 0;         ///< messages whose handler failed for good (after retries)
    std::uint64_t retried = 0;        ///< retry attempts
    std::uint64_t dead_lettered = 0;  ///< failed messages written to the dead letter topic
    std::uint64_t in_flight = 0;
};

/// State of one shared consumer (one librdkafka consumer and its poll thread).
struct consumer_stats {
    std::string group;
    std::size_t triggers = 0;             ///< triggers attached
    std::size_t assigned_partitions = 0;  ///< partitions this member holds now
    std::uint64_t rebalances = 0;         ///< rebalance callbacks (assign, revoke, lost)
    /// Clients replaced after a fatal error (its partitions lost, the new client rejoined).
    std::uint64_t recreations = 0;
};

/// Committed offsets acknowledged by the broker: topic → partition → next offset to consume.
using committed_offsets = std::map<std::string, std::map<std::int32_t, std::int64_t>>;

}  // namespace kt
