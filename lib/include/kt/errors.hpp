// Error types of kafka-triggers: a std::error_category for Kafka errors and the exceptions we
// throw.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace kt {

/// Category of librdkafka's `rd_kafka_resp_err_t` values (local errors are negative, broker
/// errors positive). Thread-safe.
const std::error_category& kafka_category() noexcept;

/// Makes an error_code from a raw `rd_kafka_resp_err_t` value.
inline std::error_code make_kafka_error(int rd_kafka_resp_err) noexcept {
    return {rd_kafka_resp_err, kafka_category()};
}

/// True when the error was produced locally by the client rather than returned by a broker.
inline bool is_local(std::error_code ec) noexcept {
    return ec.category() == kafka_category() && ec.value() < 0;
}

/// True when retrying the same operation later can succeed (timeouts, transport errors,
/// rebalances, leader moves, coordinator moves).
bool is_retryable(std::error_code ec) noexcept;

/// Invalid configuration: names the offending property and says what to do. Never carries a
/// secret value.
class config_error : public std::invalid_argument {
  public:
    config_error(std::string property, const std::string& what)
        : std::invalid_argument(what), property_(std::move(property)) {}
    /// The property (or option) that was rejected.
    const std::string& property() const noexcept { return property_; }

  private:
    std::string property_;
};

/// A Kafka operation failed; carries the Kafka error code.
class kafka_error : public std::system_error {
  public:
    using std::system_error::system_error;
};

}  // namespace kt
