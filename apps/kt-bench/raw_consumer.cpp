// The ceiling: a plain librdkafka consume loop. The only kt-bench file that includes librdkafka
// (apps use the public API; this is the alternative the public API is measured against).
#include <librdkafka/rdkafka.h>

#include <memory>
#include <stdexcept>

#include "bench.hpp"

namespace kt_bench {

namespace {

using consumer_ptr = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;

/// A consumer subscribed to `topic` with a trigger's config, committing on its own
/// (enable.auto.commit) as kafka-triggers commits for a trigger.
consumer_ptr subscribe(const raw_consume_request& request) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto properties = request.config.properties();
    properties["enable.auto.commit"] = "true";
    for (const auto& [name, value] : properties)
        if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(error);
        }
    consumer_ptr consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error),
                          &rd_kafka_destroy);
    if (!consumer) throw std::runtime_error(error);
    rd_kafka_poll_set_consumer(consumer.get());
    auto* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, request.topic.c_str(), RD_KAFKA_PARTITION_UA);
    const auto err = rd_kafka_subscribe(consumer.get(), topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) throw std::runtime_error(rd_kafka_err2str(err));
    return consumer;
}

bool counts(const raw_consume_request& request, const rd_kafka_message_t& m) {
    if (!request.on_message) return true;
    const std::string_view value(static_cast<const char*>(m.payload), m.payload ? m.len : 0);
    return request.on_message(value);
}

}  // namespace

consume_outcome raw_consume(const raw_consume_request& request) {
    auto consumer = subscribe(request);
    delivery_clock clock(request.expected, request.partitions);
    const auto deadline = std::chrono::steady_clock::now() + patience(request.expected);
    while (clock.seen() < request.expected && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
        if (!m) continue;
        if (!m->err && counts(request, *m)) clock.record(m->partition);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(consumer.get());
    return {clock.seen(), clock.rate()};
}

}  // namespace kt_bench
