// kt::producer: an awaitable Kafka producer (plus fire-and-forget for bulk loads).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include <kt/config.hpp>
#include <kt/trace.hpp>

namespace kt {

namespace detail {
struct producer_access;
class handling_trace;
}  // namespace detail

struct header {
    std::string name;
    std::optional<std::string> value;  ///< nullopt: a null header value
};

/// One record to produce. A null key or value (nullopt) is sent as null, not as empty bytes.
struct record {
    std::string topic;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<header> headers;
    std::int32_t partition = -1;  ///< -1: chosen by the partitioner from the key
};

/// Replaces the traceparent and tracestate headers of `r` by `context`'s (tracestate left out when
/// empty). For records a plain handler writes: `if (auto t = m.trace()) set_trace_headers(r,
/// t->child());` (a transform's `out` does this by itself).
void set_trace_headers(record& r, const trace_context& context);

/// Where the broker stored a record.
struct delivery {
    std::string topic;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
};

/// A librdkafka producer with its own poll thread serving delivery reports. Idempotence is on
/// unless the config sets `enable.idempotence`. Thread-safe; send() completes on the awaiting
/// coroutine's executor. The `out` a transform handler gets is a view of its trigger's producer
/// for that one call (do not keep it): records sent through it without a traceparent header get
/// the handled record's child trace context (see kt::message::trace()), and so do its produce()s.
class producer {
  public:
    /// Throws kt::config_error naming an invalid or unknown property.
    explicit producer(const producer_config& config);
    /// Flushes for up to flush_timeout, then fails whatever is still queued (_PURGE_QUEUE).
    ~producer();
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;

    /// Produces `r` and resumes once the broker acknowledged it (after librdkafka's own retries).
    /// Throws kt::kafka_error: at once for a record that can never be sent (larger than
    /// message.max.bytes, unknown partition), or on a failed delivery.
    [[nodiscard]] boost::asio::awaitable<delivery> send(record r);
    /// Fire and forget (for bulk loads): counted in delivered()/failed(); waits while librdkafka's
    /// local queue is full. Throws kt::kafka_error for a record that can never be sent.
    void produce(const std::string& topic, std::string_view key, std::string_view value,
                 std::int32_t partition = -1);
    /// Fire and forget, for a record with headers or a null key or value.
    void produce(record r);
    /// Waits until every queued record is delivered or failed; false on timeout.
    bool flush(std::chrono::milliseconds timeout);

    std::uint64_t delivered() const noexcept;
    std::uint64_t failed() const noexcept;
    /// Records queued or in flight to the brokers.
    std::size_t queue_depth() const noexcept;
    /// How long the destructor flushes before failing what is left.
    std::chrono::milliseconds flush_timeout{10000};

    struct state;  ///< implementation (lib/src/producer_state.hpp)

  private:
    friend struct detail::producer_access;
    /// A handler's view of a producer: shares its state, never flushes, and gives records the
    /// handling's trace context.
    producer(std::shared_ptr<state> shared, detail::handling_trace& trace) noexcept
        : state_(std::move(shared)), trace_(&trace) {}

    std::shared_ptr<state> state_;
    detail::handling_trace* trace_ = nullptr;  ///< set in views only
};

/// The producer-side subset of a consumer's config: connection and security properties are kept,
/// consumer-only properties (group.id, fetch.*, auto.offset.reset, ...) dropped. Used for dead
/// letter topics and transforming triggers that write to the consumer's cluster.
producer_config producer_config_for(const consumer_config& consumer);

}  // namespace kt
