// The Kafka error category, and kt::batch_error.
#include <librdkafka/rdkafka.h>

#include <kt/errors.hpp>
#include <kt/options.hpp>

namespace kt {
namespace {

class kafka_error_category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "kafka"; }
    std::string message(int value) const override {
        return rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(value));
    }
};

}  // namespace

const std::error_category& kafka_category() noexcept {
    static const kafka_error_category category;
    return category;
}

bool is_retryable(std::error_code ec) noexcept {
    if (ec.category() != kafka_category()) return false;
    switch (static_cast<rd_kafka_resp_err_t>(ec.value())) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
            return true;
        default:
            return false;
    }
}

batch_error::batch_error(std::size_t index, std::exception_ptr cause)
    : std::runtime_error([&] {
          if (!cause) throw std::invalid_argument("kt::batch_error: the cause is null");
          try {
              std::rethrow_exception(cause);
          } catch (const std::exception& e) {
              return std::string(e.what());
          } catch (...) {
              return std::string("a non-standard exception");
          }
      }()),
      index_(index),
      cause_(std::move(cause)) {}

}  // namespace kt
