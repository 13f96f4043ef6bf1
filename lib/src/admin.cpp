// kt::admin: CreateTopics, metadata, watermarks and committed offsets; the reachability probe.
#include <kt/admin.hpp>

#include <algorithm>

#include "log.hpp"
#include "rdkafka_handles.hpp"

using namespace std::chrono_literals;

namespace kt {

struct admin::state {
    consumer_config config;
    detail::client_ptr client;
};

admin::admin(const consumer_config& config) : state_(std::make_unique<state>()) {
    state_->config = config;
    state_->client = detail::make_client(RD_KAFKA_PRODUCER, detail::make_conf(config));
}

admin::~admin() = default;

bool admin::create_topic(const std::string& topic, int partitions, int replication_factor,
                         std::chrono::milliseconds timeout) {
    auto* rk = state_->client.get();
    char reason[512];
    auto* new_topic =
        rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, reason, sizeof reason);
    if (!new_topic)
        throw config_error("topic", fmt::format("cannot create topic '{}': {}", topic, reason));
    detail::queue_ptr queue(rd_kafka_queue_new(rk));
    auto* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), nullptr,
                                                0);
    rd_kafka_CreateTopics(rk, &new_topic, 1, options, queue.get());
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_NewTopic_destroy(new_topic);

    rd_kafka_event_t* event =
        rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000);
    if (!event)
        throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__TIMED_OUT), "create topic " + topic);
    std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> owner(
        event, rd_kafka_event_destroy);
    detail::throw_if_error(rd_kafka_event_error(event), "create topic " + topic);
    size_t count = 0;
    const auto* result =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
        const auto err = rd_kafka_topic_result_error(result[i]);
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return false;
        detail::throw_if_error(err, fmt::format("create topic {}: {}", topic,
                                                rd_kafka_topic_result_error_string(result[i])
                                                    ? rd_kafka_topic_result_error_string(result[i])
                                                    : ""));
    }
    return true;
}

int admin::partition_count(const std::string& topic, std::chrono::milliseconds timeout) {
    auto* rk = state_->client.get();
    rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> owner(
        handle, rd_kafka_topic_destroy);
    const rd_kafka_metadata_t* metadata = nullptr;
    detail::throw_if_error(
        rd_kafka_metadata(rk, 0, handle, &metadata, static_cast<int>(timeout.count())),
        "metadata of " + topic);
    std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> meta(
        metadata, rd_kafka_metadata_destroy);
    if (meta->topic_cnt != 1)
        throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), topic);
    detail::throw_if_error(meta->topics[0].err, "topic " + topic);
    return meta->topics[0].partition_cnt;
}

std::map<std::int32_t, std::int64_t> admin::high_watermarks(const std::string& topic,
                                                            std::chrono::milliseconds timeout) {
    std::map<std::int32_t, std::int64_t> result;
    const int partitions = partition_count(topic, timeout);
    for (int p = 0; p < partitions; ++p) {
        int64_t low = 0, high = 0;
        detail::throw_if_error(
            rd_kafka_query_watermark_offsets(state_->client.get(), topic.c_str(), p, &low, &high,
                                             static_cast<int>(timeout.count())),
            "watermarks of " + topic);
        result[p] = high;
    }
    return result;
}

std::map<std::int32_t, std::int64_t> admin::committed(const std::string& group,
                                                      const std::string& topic,
                                                      std::chrono::milliseconds timeout) {
    const int partitions = partition_count(topic, timeout);
    consumer_config config = state_->config;
    config.set("group.id", group);
    auto consumer = detail::make_client(RD_KAFKA_CONSUMER, detail::make_conf(config));
    detail::partition_list_ptr list(rd_kafka_topic_partition_list_new(partitions));
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
    detail::throw_if_error(
        rd_kafka_committed(consumer.get(), list.get(), static_cast<int>(timeout.count())),
        "committed offsets of " + group);
    std::map<std::int32_t, std::int64_t> result;
    for (int i = 0; i < list->cnt; ++i)
        if (list->elems[i].offset >= 0) result[list->elems[i].partition] = list->elems[i].offset;
    rd_kafka_consumer_close(consumer.get());
    return result;
}

namespace {

/// The probe's error callback (served by rd_kafka_poll on the probing thread): the first
/// failure that says why the servers cannot be reached.
void remember_first_failure(rd_kafka_t*, int err, const char* reason, void* opaque) {
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) return;  // a summary, not a reason
    auto& probe = *static_cast<broker_probe*>(opaque);
    if (probe.error) return;
    probe.error = make_kafka_error(err);
    probe.reason = reason ? reason : "";
}

void drop_log_line(const rd_kafka_t*, int, const char*, const char*) {}

std::chrono::milliseconds ms_until(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t -
                                                                 std::chrono::steady_clock::now());
}

/// "127.0.0.1:1/bootstrap: Connect to ... failed: Connection refused (after 0ms in state
/// CONNECT)" without the broker in front and the details behind.
std::string plain_reason(std::string reason) {
    const auto details = reason.find(" (after ");
    if (details != std::string::npos) reason.erase(details);
    const auto colon = reason.find(": ");
    if (colon != std::string::npos && reason.find('/') < colon) reason.erase(0, colon + 2);
    return reason;
}

}  // namespace

broker_probe probe_brokers(const consumer_config& config, std::chrono::milliseconds timeout) {
    broker_probe probe;
    auto conf = detail::make_conf(config);
    rd_kafka_conf_set_log_cb(conf.get(), drop_log_line);
    rd_kafka_conf_set_error_cb(conf.get(), remember_first_failure);
    rd_kafka_conf_set_opaque(conf.get(), &probe);
    const auto client = detail::make_client(RD_KAFKA_PRODUCER, std::move(conf));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // Attempts of up to 500 ms, each followed by a poll that serves remember_first_failure.
    for (auto slice = std::min(ms_until(deadline), 500ms); slice > 0ms;
         slice = std::min(ms_until(deadline), 500ms)) {
        const auto slice_end = std::chrono::steady_clock::now() + slice;
        const rd_kafka_metadata_t* metadata = nullptr;
        if (!rd_kafka_metadata(client.get(), 0, nullptr, &metadata,
                               static_cast<int>(slice.count()))) {
            rd_kafka_metadata_destroy(metadata);
            return {.reachable = true};
        }
        rd_kafka_poll(client.get(), static_cast<int>(std::max(ms_until(slice_end), 0ms).count()));
    }
    if (!probe.error) probe.error = make_kafka_error(RD_KAFKA_RESP_ERR__TIMED_OUT);
    probe.reason = plain_reason(std::move(probe.reason));
    return probe;
}

}  // namespace kt
