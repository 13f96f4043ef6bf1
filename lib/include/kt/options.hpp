// What a trigger and a host are configured with: ordering, handlers, retries, dead letters,
// batches, listeners, delivery guarantees, and the host's intervals and limits.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <kt/config.hpp>
#include <kt/message.hpp>
#include <kt/metrics.hpp>
#include <kt/producer.hpp>
#include <kt/trace.hpp>

namespace kt {

/// How a trigger's messages may run concurrently. Offsets always commit only up to the lowest
/// unfinished message, so concurrency never loses a message.
enum class ordering {
    partition,  ///< one message at a time per partition (Kafka order)
    key,        ///< one at a time per key within a partition; different keys run concurrently
    none,       ///< any message may run concurrently, up to max_in_flight
};

/// The key that orders a message under ordering::key (see trigger_options::key_of).
using key_extractor = std::function<std::string(const message&)>;

/// Orders by the value of the last header named `name` (e.g. a tenant id); a message without
/// it is ordered with the other messages of its partition that have none.
key_extractor key_from_header(std::string name);

/// A trigger handler: a coroutine run on the shard that owns the message's partition.
using handler = std::function<boost::asio::awaitable<void>(const message&)>;
/// A consume-transform-produce handler: what it sends through `out` belongs to the message
/// (under exactly_once, to the same transaction as the message's offset).
using transform_handler =
    std::function<boost::asio::awaitable<void>(const message&, kt::producer& out)>;
/// A batch handler: up to batch_options::max_messages messages of one partition, in order. To
/// fail from one message on, throw kt::batch_error.
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

/// A batch handler throws this to say which message failed: the messages before `index` (into
/// the span it got) are done and commit; the failed one runs again, with those after it, as a
/// batch starting at it, per the trigger's retry_policy (its attempts are counted for it alone).
/// Once it is out of attempts only it is dead-lettered, and the rest run on as a batch. The
/// retry_policy judges `cause` when set (e.g. a kt::permanent_error: no retries), else the
/// batch_error itself (retryable by default). An index outside the span fails the whole batch
/// (logged). Any other exception from a batch handler fails the whole batch.
class batch_error : public std::runtime_error {
  public:
    batch_error(std::size_t index, const std::string& reason)
        : std::runtime_error(reason), index_(index) {}
    /// Keeps `cause` (its what() becomes the reason). Throws std::invalid_argument when null.
    batch_error(std::size_t index, std::exception_ptr cause);

    std::size_t index() const noexcept { return index_; }
    /// What failed, when given (dead letters name its type), else null.
    const std::exception_ptr& cause() const noexcept { return cause_; }

  private:
    std::size_t index_;
    std::exception_ptr cause_;
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

/// Non-blocking retries through retry topics (Spring's @RetryableTopic). A message that failed
/// (after `retry`'s in-process attempts, and retryable by its policy) is written to tier 1's
/// topic, and its own offset completes once that write is acknowledged: its partition never
/// waits. The trigger consumes its tiers too (same consumer); a tier's record runs once its delay
/// has passed (its partition is held back until then, no polling, no sleeping handler), and one
/// that fails again goes to the next tier, after the last one to the dead letter topic. Records
/// carry their history in headers (kt-retry-trigger, kt-retry-tier, kt-retry-due, one
/// kt-retry-failure per failed tier, kt-original-topic/partition/offset), so attempts survive
/// restarts and rebalances. at_least_once triggers only.
struct retry_topics_policy {
    std::vector<std::chrono::milliseconds> delays;  ///< one per tier (each > 0); empty: off
    std::string topic_prefix;  ///< tier n (1-based) is "<prefix><n>"; default "<topic>.retry."
};

/// "1s,10s,60s" (each <n>ms, <n>s, <n>m or <n>h) as retry tier delays; throws kt::config_error
/// naming the item that is not one.
std::vector<std::chrono::milliseconds> parse_retry_delays(std::string_view text);

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
    /// ordering::key: what orders a message instead of its record key (unset: the record key).
    /// Called on the shard a few times per message, so it must give the same key each time and
    /// be cheap. One that throws orders the message as one without a key (logged).
    key_extractor key_of;
    /// Handlers of this trigger running at once, per shard.
    unsigned max_in_flight = 64;
    /// Delivered-but-unfinished messages per partition above which the partition is held back
    /// (its queue is not drained; librdkafka's prefetch limits then stop its fetching); it
    /// resumes below half of it.
    std::size_t max_backlog = 10000;
    retry_policy retry;
    retry_topics_policy retry_topics;
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

/// The topics of `options`' retry tiers, tier 1 first (none when retry topics are off); they
/// must exist on brokers that do not create topics on first use.
std::vector<std::string> retry_topic_names(const trigger_options& options);

struct host_options {
    kt::sharing sharing = kt::sharing::per_group;
    /// The longest a finished offset waits for its commit (also committed on revoke and stop).
    /// Each commit carries a completion map of what finished above the committed offset, so
    /// after a crash the next owner redoes only what was unfinished or not yet committed.
    std::chrono::milliseconds commit_interval{1000};
    /// A commit goes out as soon as this many offsets finished since the last one (0: only
    /// every commit_interval). One commit is in flight per consumer at a time.
    std::size_t commit_after = 1000;
    /// Commits carry the completion map in their metadata (off: the metadata stays empty, and a
    /// restart redoes everything above the committed offset).
    bool completion_map = true;
    /// How long stop() waits for in-flight handlers before cancelling them.
    std::chrono::milliseconds drain_timeout{10000};
    /// How long a revocation waits for the revoked partitions' running handlers before
    /// cancelling them (their queued messages are dropped at once and go to the next owner).
    /// Also bounds (at most 5 s) an assignment's read of the committed completion maps.
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
    /// Called around every handler call of every trigger (see kt::tracing_hooks); unset: off.
    tracing_hooks tracing;
};

}  // namespace kt
