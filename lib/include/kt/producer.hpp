// kt::producer: a thin producer for demos, tests and benchmarks (fire, then flush).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <kt/config.hpp>

namespace kt {

/// Enqueues records and reports delivery counts. Thread-safe (librdkafka's producer is).
class producer {
  public:
    /// Throws kt::config_error naming an invalid property.
    explicit producer(const producer_config& config);
    ~producer();
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;

    /// Enqueues one record (copies key and value); waits while the local queue is full.
    /// Throws kt::kafka_error for a record that can never be sent (e.g. larger than
    /// message.max.bytes) or an unknown topic.
    void send(const std::string& topic, std::string_view key, std::string_view value,
              std::int32_t partition = -1);
    /// Waits until every enqueued record is delivered or failed; false on timeout.
    bool flush(std::chrono::milliseconds timeout);
    std::uint64_t delivered() const noexcept;
    std::uint64_t failed() const noexcept;

  private:
    struct state;
    std::unique_ptr<state> state_;
};

}  // namespace kt
