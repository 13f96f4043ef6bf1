// kt::trigger_host: registers triggers (coroutine handlers), shares consumers, drains on stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <kt/config.hpp>
#include <kt/message.hpp>
#include <kt/metrics.hpp>
#include <kt/producer.hpp>
#include <kt/runtime.hpp>

namespace kt {

namespace detail {
class host_core;
class subscription_inbox;
}  // namespace detail

/// How a trigger's messages may run concurrently. Offsets always commit only up to the lowest
/// unfinished message, so concurrency never loses a message.
enum class ordering {
    partition,  ///< one message at a time per partition (Kafka order)
    key,        ///< one at a time per key within a partition; different keys run concurrently
    none,       ///< any message may run concurrently, up to max_in_flight
};

/// A trigger handler: a coroutine run on the shard that owns the message's partition.
using handler = std::function<boost::asio::awaitable<void>(const message&)>;
/// A consume-transform-produce handler: what it sends through `out` belongs to the message
/// (under exactly_once, to the same transaction as the message's offset).
using transform_handler =
    std::function<boost::asio::awaitable<void>(const message&, kt::producer& out)>;
/// A batch handler: up to batch_options::max_messages messages of one partition, in order.
using batch_handler = std::function<boost::asio::awaitable<void>(std::span<const message>)>;

/// A rebalance listener: the trigger's partitions that were assigned, revoked or lost.
using rebalance_listener =
    std::function<boost::asio::awaitable<void>(std::vector<std::int32_t> partitions)>;

/// Optional coroutines told about a trigger's partition changes. They run on shard 0 and the
/// consumer waits for them (up to revoke_drain_timeout): on_assigned before the partitions'
/// first messages are handed out, on_revoked after their handlers finished and before their
/// offsets are committed, on_lost (nothing can be committed any more) before the next poll.
/// Exceptions are logged and otherwise ignored.
struct rebalance_listeners {
    rebalance_listener on_assigned;
    rebalance_listener on_revoked;
    rebalance_listener on_lost;
};

/// A handler throws this (or a subclass) for failures that retrying cannot fix: no retries, the
/// message goes straight to the dead letter topic.
class permanent_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// How often and how patiently a failed handler is retried. Attempt n (n >= 1) waits
/// min(max_backoff, initial_backoff * multiplier^(n-1)), randomised by ±jitter.
struct retry_policy {
    unsigned max_attempts = 1;  ///< including the first; 1 = no retries
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{10000};
    double multiplier = 2.0;
    double jitter = 0.2;  ///< fraction of the delay, 0..1
    /// Which failures are worth retrying; default: everything except kt::permanent_error.
    std::function<bool(const std::exception_ptr&)> retryable;
};

/// Where messages go whose handler failed for good.
struct dead_letter_policy {
    bool enabled = true;
    std::string topic;         ///< default: "<trigger topic>.dlq"
    producer_config producer;  ///< default: producer_config_for(trigger consumer config)
};

/// Groups a partition's messages for a batch trigger: a batch starts when max_messages are
/// waiting or the oldest waited max_wait.
struct batch_options {
    std::size_t max_messages = 100;
    std::chrono::milliseconds max_wait{100};
};

struct trigger_options {
    std::string name;          ///< unique within the host
    std::string topic;         ///< one topic per trigger
    consumer_config consumer;  ///< librdkafka properties; must contain bootstrap.servers, group.id
    kt::ordering ordering = kt::ordering::partition;
    /// Handlers of this trigger running at once, per shard.
    unsigned max_in_flight = 64;
    /// Delivered-but-unfinished messages per partition above which the partition is held back
    /// (its queue is not drained; librdkafka's prefetch limits then stop its fetching); it
    /// resumes below half of it.
    std::size_t max_backlog = 10000;
    retry_policy retry;
    dead_letter_policy dead_letter;
    rebalance_listeners listeners;
    /// at_most_once and exactly_once triggers never share a consumer with triggers of another
    /// guarantee; exactly_once triggers get a consumer of their own (see README, "Delivery").
    delivery_guarantee delivery = delivery_guarantee::at_least_once;
    /// exactly_once: prefix of the transactional.id of the trigger's producers (one per shard,
    /// "<prefix>.<shard>"). Must differ between processes of one group; default
    /// "kt.<group>.<trigger>.<hostname>".
    std::string transactional_id;
    /// exactly_once: a transaction ends after this many messages or this long, whichever first.
    std::size_t transaction_max_messages = 500;
    std::chrono::milliseconds transaction_interval{100};
};

struct host_options {
    kt::sharing sharing = kt::sharing::per_group;
    /// How often completed offsets are committed (also committed on revoke and stop).
    std::chrono::milliseconds commit_interval{1000};
    /// How long stop() waits for in-flight handlers before cancelling them.
    std::chrono::milliseconds drain_timeout{10000};
    /// How long a revocation waits for the revoked partitions' running handlers before
    /// cancelling them (their queued messages are dropped at once and go to the next owner).
    std::chrono::milliseconds revoke_drain_timeout{10000};
    /// Capacity of each poll-thread→shard ring (messages) and shard→poll-thread ring.
    std::size_t channel_capacity = 8192;
    /// librdkafka statistics for metrics (lag, rates, brokers), unless the consumer config sets
    /// statistics.interval.ms itself; 0 turns them off.
    std::chrono::milliseconds statistics_interval{5000};
    /// A consumer that has reached no broker for this long is recreated (as after a fatal error).
    std::chrono::milliseconds outage_recreate_after{60000};
    /// Thresholds of health() and of the scaling advice in metrics().
    health_thresholds health;
};

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

/// The lower-level API: the application pulls messages itself and reports completion.
/// Keep it alive while consuming; destroying it does not remove the trigger (use
/// trigger_host::remove_trigger). next() and complete() may be called from any executor; one
/// next() at a time.
class [[nodiscard]] subscription {
  public:
    subscription() = default;
    /// Next message; throws boost::system::system_error (channel_closed) once the host stops or
    /// the subscription is removed.
    [[nodiscard]] boost::asio::awaitable<message> next();
    /// Marks `m` finished: it may be committed once every trigger on its partition finished it.
    void complete(const message& m);
    /// Commits every finished offset of this subscription's consumer; resumes once the broker
    /// acknowledged (throws kt::kafka_error on failure).
    [[nodiscard]] boost::asio::awaitable<void> commit();
    const std::string& name() const noexcept;

  private:
    friend class trigger_host;
    std::shared_ptr<detail::subscription_inbox> inbox_;
};

/// Hosts triggers on a runtime. Triggers whose sharing keys are equal share one librdkafka
/// consumer, polled by one dedicated thread that routes messages to shards through lock-free
/// rings. Every trigger on a shared consumer sees every message of the partitions it holds.
///
/// Thread-safety: add_trigger/subscribe/start and the accessors may be called from any thread;
/// the awaitables complete on the awaiting coroutine's executor.
class trigger_host {
  public:
    explicit trigger_host(runtime& rt, host_options options = {});
    trigger_host(const trigger_host&) = delete;
    trigger_host& operator=(const trigger_host&) = delete;
    /// Stops (drain, commit, close) if stop() was not awaited; bounded by drain_timeout.
    ~trigger_host();

    /// Adds a trigger. Throws kt::config_error (naming the property) for an invalid or unknown
    /// consumer property, a missing bootstrap.servers/group.id, or a duplicate name. Before
    /// start() nothing connects; after start() the trigger starts at once.
    void add_trigger(trigger_options options, handler h);
    /// Adds a consume-transform-produce trigger; `out` writes to the trigger consumer's cluster
    /// (producer_config_for its config), transactionally under exactly_once.
    void add_trigger(trigger_options options, transform_handler h);
    /// Adds a batch trigger (per partition; retries and dead letters apply to the whole batch).
    void add_batch_trigger(trigger_options options, batch_options batching, batch_handler h);
    /// Adds a pull-style trigger delivered on `executor` (default: shard 0).
    subscription subscribe(trigger_options options, boost::asio::any_io_executor executor = {});
    /// Removes a trigger: it stops receiving messages, its in-flight handlers finish (queued ones
    /// are dropped), and its consumer is closed when it was the last trigger on it.
    [[nodiscard]] boost::asio::awaitable<void> remove_trigger(std::string name);

    /// Connects the consumers and starts fetching; registers stop() with the runtime.
    void start();
    /// Graceful stop: stop fetching, finish in-flight handlers (cancel after drain_timeout),
    /// commit, leave the groups, close. Idempotent.
    [[nodiscard]] boost::asio::awaitable<void> stop();
    /// Commits every finished offset of every consumer; resumes when the broker acknowledged.
    [[nodiscard]] boost::asio::awaitable<void> commit();

    /// The host's producer for `config`: one per distinct config (secrets compared by hash),
    /// shared with dead letter writers; flushed and closed after the consumers at stop.
    std::shared_ptr<kt::producer> shared_producer(const producer_config& config);

    /// Number of librdkafka consumers currently open or pending.
    std::size_t consumer_count() const;
    std::vector<trigger_stats> stats() const;
    /// One entry per open consumer.
    std::vector<kt::consumer_stats> consumer_stats() const;
    /// Broker-acknowledged commits, per topic the minimum over the consumers reading it.
    committed_offsets committed() const;
    /// Everything at once: triggers, consumers, producers, health and scaling advice. Counters
    /// are read while work goes on; per-partition figures are at most ~0.5 s old.
    metrics_snapshot metrics() const;
    /// Readiness and health by host_options::health (see health_report).
    health_report health() const;
    /// Stops starting handlers of trigger `name` (running ones finish; new messages queue until
    /// its backlog holds its partitions back). False when no such trigger.
    bool pause_trigger(const std::string& name);
    /// Undoes pause_trigger. False when no such trigger.
    bool resume_trigger(const std::string& name);

  private:
    std::shared_ptr<detail::host_core> core_;
};

}  // namespace kt
