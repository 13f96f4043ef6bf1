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
#include <kt/options.hpp>
#include <kt/producer.hpp>
#include <kt/runtime.hpp>

namespace kt {

namespace detail {
class host_core;
class subscription_inbox;
}  // namespace detail

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
