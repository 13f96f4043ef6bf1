// Consume errors: classified and logged.
#include "consume_errors.hpp"

#include <algorithm>

#include "log.hpp"

namespace kt::detail {

consume_errors::meaning consume_errors::on_error(const rd_kafka_message_t& error) {
    const auto err = error.err;
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return meaning::nothing;
    const std::string topic = error.rkt ? rd_kafka_topic_name(error.rkt) : "";
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        if (std::find(warned_missing_.begin(), warned_missing_.end(), topic) ==
            warned_missing_.end()) {
            warned_missing_.push_back(topic);
            log(log_level::warning,
                "group '{}': topic '{}' does not exist (yet); its triggers wait until it is "
                "created",
                group_, topic);
        }
        return meaning::nothing;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) return meaning::nothing;  // the poll loop recreates
    log(log_level::warning, "group '{}': consume error on '{}': {}", group_, topic,
        rd_kafka_message_errstr(&error));
    return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? meaning::brokers_down : meaning::nothing;
}

}  // namespace kt::detail
