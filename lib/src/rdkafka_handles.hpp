// RAII owners of librdkafka handles and the config builder that validates properties.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include <librdkafka/rdkafka.h>

#include <kt/config.hpp>
#include <kt/errors.hpp>

namespace kt::detail {

struct conf_deleter {
    void operator()(rd_kafka_conf_t* conf) const noexcept { rd_kafka_conf_destroy(conf); }
};
struct client_deleter {
    void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct partition_list_deleter {
    void operator()(rd_kafka_topic_partition_list_t* list) const noexcept {
        rd_kafka_topic_partition_list_destroy(list);
    }
};
struct queue_deleter {
    void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
struct message_deleter {
    void operator()(rd_kafka_message_t* message) const noexcept {
        rd_kafka_message_destroy(message);
    }
};

using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;
using client_ptr = std::unique_ptr<rd_kafka_t, client_deleter>;
using partition_list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;
using queue_ptr = std::unique_ptr<rd_kafka_queue_t, queue_deleter>;
using message_ptr = std::unique_ptr<rd_kafka_message_t, message_deleter>;

/// Builds an rd_kafka_conf_t from `config`, with librdkafka's logs routed to ours. Throws
/// kt::config_error naming an unknown or invalid property (a secret's value is never quoted).
conf_ptr make_conf(const consumer_config& config);

/// Throws kt::config_error when `name` is a property kafka-triggers manages itself
/// (enable.auto.commit, enable.auto.offset.store) and `value` contradicts ours ("false").
void check_managed_property(std::string_view name, std::string_view value);

/// rd_kafka_new() of `type`; throws kt::config_error with librdkafka's reason on failure.
client_ptr make_client(rd_kafka_type_t type, conf_ptr conf);

/// Throws kt::kafka_error for a non-zero `err`, prefixed with `what`.
void throw_if_error(rd_kafka_resp_err_t err, std::string_view what);

/// Copies `metadata` into `p` (librdkafka frees it with the list); empty leaves none.
inline void set_metadata(rd_kafka_topic_partition_t& p, std::string_view metadata) {
    if (metadata.empty()) return;
    p.metadata = std::malloc(metadata.size());
    std::memcpy(p.metadata, metadata.data(), metadata.size());
    p.metadata_size = metadata.size();
}

}  // namespace kt::detail
