// kt-bench's shared vocabulary: options, the cluster under test, timing and resource figures, and
// the results each scenario hands to the report.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <kt/config.hpp>
#include <kt/embedded_cluster.hpp>
#include <kt/runtime.hpp>

namespace kt_bench {

using namespace std::chrono_literals;

struct options {
    std::string bootstrap;  ///< empty: an embedded 3-broker cluster in this process
    std::vector<std::string> scenarios;
    long messages = 200000;  ///< baseline and isolation topics; others scale from it
    unsigned shards = 2;
    /// runtime_options::poll_before_sleep of every runtime under test (the hop scenario runs both)
    unsigned poll_before_sleep_us = 0;
    unsigned rounds = 3;  ///< alternating rounds of the side-by-side pairs
    std::vector<unsigned> fanout_triggers{1, 8, 31, 100};
    double latency_rate = 5000;  ///< messages/s produced in the latency scenario
    std::string json_path;
    std::string plot_path;  ///< svg; empty: next to the JSON file
    bool quick = false;
    bool smoke = false;     ///< tiny sizes, scenarios at the same time: does everything work?
    bool progress = false;  ///< a progress bar on stderr
};

/// The runtime every scenario's triggers run on.
inline kt::runtime_options runtime_of(const options& o) {
    return {.shards = o.shards,
            .poll_before_sleep = std::chrono::microseconds(o.poll_before_sleep_us)};
}

/// Every scenario name, in run order.
inline const std::vector<std::string> all_scenarios{"baseline", "fanout",    "latency",
                                                    "hop",      "isolation", "concurrency"};

/// The cluster under test: embedded (in this process) or --bootstrap. Topic and group names get a
/// per-run prefix so a real cluster never mixes runs.
class bench_cluster {
  public:
    explicit bench_cluster(const std::string& bootstrap);
    const std::string& bootstrap() const noexcept { return bootstrap_; }
    bool embedded() const noexcept { return cluster_ != nullptr; }
    /// `name` with the run prefix: use for topics and group ids.
    std::string unique(std::string_view name) const;
    /// Creates topic unique(name) and returns its full name.
    std::string create_topic(std::string_view name, int partitions);
    /// Produces `count` 100-byte values keyed "key-<i % keys>" (fire and forget, then flush);
    /// throws unless every record was delivered.
    void fill(const std::string& topic, long count, long keys = 1000);
    /// Consumer config for `group` (a unique name), reading from the earliest offset. On the
    /// embedded cluster fetch.wait.max.ms is 10: its brokers hold an empty fetch for the whole
    /// wait even when data arrives, which would time the broker instead of the consumer.
    /// queued.min.messages is 1 000 000 everywhere (see cluster.cpp).
    kt::consumer_config consumer(const std::string& group) const;

  private:
    std::unique_ptr<kt::embedded_cluster> cluster_;
    std::string bootstrap_;
    std::string prefix_;
};

/// Messages counted on any thread, timed from the moment every partition has delivered one to the
/// last message: throughput without the group join, and without the up to ~1 s by which a
/// partition's first fetch can lag the others' (which would time the broker, not the consumer).
class delivery_clock {
  public:
    /// `partitions`: of the consumed topic (at most 64; 0: timed from the first message).
    delivery_clock(long expected, int partitions);
    /// A message of `partition` arrived (any thread).
    void record(std::int32_t partition) noexcept;
    /// Waits until every expected message arrived or `timeout` passed; true when all arrived.
    bool wait(std::chrono::steady_clock::duration timeout) const;
    long seen() const noexcept;
    long expected() const noexcept { return expected_; }
    /// Messages per second from every partition flowing to the last message (from the first
    /// message when that window holds under a tenth of them); 0 before the last.
    double rate() const noexcept;

  private:
    /// What one recording thread counted, on a cache line of its own: the shards' handlers do not
    /// bounce one shared counter between cores on every call (which a no-op handler would not do,
    /// and which cost the fan-out as much as a sizeable part of our own per-call work).
    struct alignas(64) tally {
        std::atomic<long> count{0};
        std::atomic<std::int64_t> last_ns{0};
    };
    static constexpr std::size_t max_tallies = 16;  // recording threads share them beyond that
    tally& local() noexcept;

    const long expected_;
    const std::uint64_t all_partitions_;
    const std::uint64_t id_;  // tells this clock apart in the threads' cached tally
    // Read on every call, written a few times per run.
    alignas(64) std::atomic<std::uint64_t> partitions_seen_{0};
    std::atomic<std::int64_t> first_ns_{0};
    std::atomic<std::int64_t> all_flowing_ns_{0};
    std::atomic<long> seen_when_all_flowing_{0};
    std::atomic<std::size_t> tallies_used_{0};
    std::array<tally, max_tallies> tallies_;
};

/// How long to wait for `messages`: generous, so only a stuck run times out.
std::chrono::steady_clock::duration patience(long messages);

/// User + system CPU seconds of this process so far (getrusage).
double cpu_seconds();

/// What a stretch of the run cost the process (the embedded cluster included).
struct process_usage {
    double cpu_seconds = 0;         ///< user + system, getrusage
    unsigned threads_peak = 0;      ///< /proc/self/status Threads
    std::int64_t rss_peak = 0;      ///< bytes, sampled VmRSS (VmHWM cannot be reset)
    unsigned connections_peak = 0;  ///< established client TCP sockets (see count_connections)
};

/// Samples threads, RSS and connections on a thread of its own until finish().
class usage_sampler {
  public:
    usage_sampler();
    ~usage_sampler();
    usage_sampler(const usage_sampler&) = delete;
    usage_sampler& operator=(const usage_sampler&) = delete;
    process_usage finish();

  private:
    void sample(unsigned tick);

    std::atomic<bool> stop_{false};
    process_usage peak_;
    double cpu_start_;
    std::thread thread_;
};

/// Returns freed heap to the system, so the next scenario's RSS starts from what is live.
void release_free_memory();

/// Established TCP connections this process opened as a client: sockets of ours (by inode in
/// /proc/self/fd) in /proc/self/net/tcp{,6} whose local port is none of our listening ports, so
/// the embedded brokers' accepted ends are not counted twice.
unsigned count_connections();

struct machine_info {
    unsigned cores = 0;
    std::string cpu;
    std::int64_t memory_bytes = 0;
    std::string load_average;  ///< /proc/loadavg at start: other work on the machine
    std::string host;
};
machine_info describe_machine();

// ---- results ------------------------------------------------------------------------------

struct rate_pair {
    double ours = 0;         ///< msgs/s, kafka-triggers
    double alternative = 0;  ///< msgs/s, the alternative it is compared with
    double ratio() const noexcept { return alternative > 0 ? ours / alternative : 0; }
};

/// Raw librdkafka loop (alternative) vs one no-op trigger (ours), rounds alternating order.
struct baseline_result {
    long messages = 0;
    long raw_received = 0;  ///< last round's counts: what each side consumed
    long trigger_received = 0;
    std::vector<rate_pair> rounds;
};

struct fanout_run {
    unsigned triggers = 0;
    kt::sharing sharing = kt::sharing::per_group;
    long expected = 0;  ///< triggers × messages
    long handled = 0;
    double deliveries_per_s = 0;
    std::size_t consumers = 0;
    process_usage usage;
};

struct fanout_result {
    long messages = 0;   ///< per trigger
    process_usage idle;  ///< before any consumer of the scenario existed
    std::vector<fanout_run> runs;
};

struct percentiles {
    long samples = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0;
};
percentiles summarise(std::vector<double> micros);

struct latency_result {
    long messages = 0;
    double rate = 0;
    long raw_received = 0, trigger_received = 0;
    percentiles raw;      ///< produce → rd_kafka_consumer_poll returned it
    percentiles trigger;  ///< produce → handler started
};

struct hop_result {
    double rate = 0;
    long pushed = 0;  ///< samples pushed per run
    percentiles hop;  ///< kt::spsc_channel push → popped on the shard, shard sleeps when idle
    double cpu_seconds = 0;  ///< process CPU over the run above
    /// The same on a shard that polls `poll_before_sleep_us` before sleeping.
    percentiles polling;
    double polling_cpu_seconds = 0;
    double poll_before_sleep_us = 0;
};

/// Fast trigger alone (alternative) vs sharing its consumer with a 100 ms trigger (ours).
struct isolation_result {
    long messages = 0;
    long received = 0;
    long slow_started = 0;  ///< slow handlers started in the last shared round: it really ran
    std::vector<rate_pair> rounds;
};

struct concurrency_run {
    std::string ordering;
    long messages = 0;  ///< produced to the run's topic
    long handled = 0;
    double msgs_per_s = 0;
};

struct concurrency_result {
    unsigned max_in_flight = 0;
    std::chrono::milliseconds handler_time{};
    std::vector<concurrency_run> runs;
};

struct bench_results {
    std::optional<baseline_result> baseline;
    std::optional<fanout_result> fanout;
    std::optional<latency_result> latency;
    std::optional<hop_result> hop;
    std::optional<isolation_result> isolation;
    std::optional<concurrency_result> concurrency;
};

// ---- scenarios ----------------------------------------------------------------------------

/// Tells the user which step runs (a bar on stderr when enabled).
using progress_note = std::function<void(const std::string&)>;

baseline_result run_baseline(bench_cluster& cluster, const options& o, const progress_note& note);
fanout_result run_fanout(bench_cluster& cluster, const options& o, const progress_note& note);
latency_result run_latency(bench_cluster& cluster, const options& o, const progress_note& note);
hop_result run_hop(const options& o);
isolation_result run_isolation(bench_cluster& cluster, const options& o, const progress_note& note);
concurrency_result run_concurrency(bench_cluster& cluster, const options& o,
                                   const progress_note& note);

// ---- the raw librdkafka consumer (raw_consumer.cpp) ----------------------------------------

struct raw_consume_request {
    kt::consumer_config config;  ///< as bench_cluster::consumer() gives a trigger
    std::string topic;
    int partitions = 0;  ///< of the topic (see delivery_clock)
    long expected = 0;
    /// Called per message with its value; returns whether it counts towards `expected`
    /// (default: every message counts).
    std::function<bool(std::string_view)> on_message;
};

/// What a consumer received and its delivery_clock rate.
struct consume_outcome {
    long received = 0;
    double rate = 0;
};

/// A plain rd_kafka_consumer_poll loop, subscribed like a trigger is; stops after `expected`
/// counted messages or patience(expected).
consume_outcome raw_consume(const raw_consume_request& request);

// ---- report (report.cpp) ------------------------------------------------------------------

void print_report(const bench_results& results, const options& o, const machine_info& machine,
                  const std::string& cluster_description);
void write_json(const bench_results& results, const options& o, const machine_info& machine,
                const std::string& cluster_description, const std::string& path);
/// Writes <plot>.dat and renders the svg with gnuplot; one line and no plot when it is missing.
void write_plot(const fanout_result& fanout, const std::string& svg_path);

}  // namespace kt_bench
