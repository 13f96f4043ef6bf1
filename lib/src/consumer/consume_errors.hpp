// What an error event of the consumer queue means, and its log line (a missing topic once per
// topic, end-of-partition never). Poll thread only.
#pragma once

#include <string>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace kt::detail {

class consume_errors {
  public:
    explicit consume_errors(std::string group) : group_(std::move(group)) {}

    enum class meaning { nothing, brokers_down };
    /// Logs `error` (an rd_kafka_message_t with err set) as it deserves; says whether it means
    /// that no broker is reachable. A fatal error is left to the poll loop, which recreates.
    meaning on_error(const rd_kafka_message_t& error);

  private:
    const std::string group_;
    std::vector<std::string> warned_missing_;
};

}  // namespace kt::detail
