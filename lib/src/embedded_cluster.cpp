// kt::embedded_cluster over librdkafka's mock cluster.
#include <kt/embedded_cluster.hpp>

#include "log.hpp"
#include "rdkafka_handles.hpp"

#include <librdkafka/rdkafka_mock.h>  // after rdkafka.h, which it requires

namespace kt {

struct embedded_cluster::state {
    detail::client_ptr owner;  // the client whose test.mock.num.brokers made (and owns) the cluster
    rd_kafka_mock_cluster_t* cluster = nullptr;
};

embedded_cluster::embedded_cluster(embedded_cluster_options options)
    : state_(std::make_unique<state>()) {
    // The owner is the cluster's first client, bootstrapped to it: a handle without brokers
    // (rd_kafka_mock_cluster_new's) made librdkafka warn "No `bootstrap.servers` configured".
    // Its notice that the mock replaced bootstrap.servers is left out (log_level 4: warnings and
    // worse); the line below says where the cluster is.
    auto conf = detail::make_conf({{"client.id", "kt-embedded-cluster"},
                                   {"test.mock.num.brokers", std::to_string(options.brokers)},
                                   {"log_level", "4"}});
    state_->owner = detail::make_client(RD_KAFKA_PRODUCER, std::move(conf));
    state_->cluster = rd_kafka_handle_mock_cluster(state_->owner.get());
    if (!state_->cluster)
        throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__FAIL),
                          "cannot start embedded cluster");
    rd_kafka_mock_set_group_consumer_session_timeout_ms(
        state_->cluster, static_cast<int>(options.consumer_group_session_timeout.count()));
    rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(
        state_->cluster, static_cast<int>(options.consumer_group_heartbeat_interval.count()));
    detail::log(log_level::info, "embedded cluster: {} broker(s) at {}", options.brokers,
                bootstrap());
}

embedded_cluster::~embedded_cluster() = default;  // destroying the owner destroys the cluster

std::string embedded_cluster::bootstrap() const {
    return rd_kafka_mock_cluster_bootstraps(state_->cluster);
}

void embedded_cluster::create_topic(const std::string& topic, int partitions) {
    detail::throw_if_error(
        rd_kafka_mock_topic_create(state_->cluster, topic.c_str(), partitions, 1),
        "create topic " + topic);
}

void embedded_cluster::set_broker_down(int broker_id, bool down) {
    detail::throw_if_error(down ? rd_kafka_mock_broker_set_down(state_->cluster, broker_id)
                                : rd_kafka_mock_broker_set_up(state_->cluster, broker_id),
                           "set broker state");
}

void embedded_cluster::push_request_errors(kafka_api api, const std::vector<int>& error_codes) {
    std::vector<rd_kafka_resp_err_t> errors;
    for (int code : error_codes) errors.push_back(static_cast<rd_kafka_resp_err_t>(code));
    rd_kafka_mock_push_request_errors_array(state_->cluster, static_cast<std::int16_t>(api),
                                            errors.size(), errors.data());
}

void embedded_cluster::clear_request_errors(kafka_api api) {
    rd_kafka_mock_clear_request_errors(state_->cluster, static_cast<std::int16_t>(api));
}

void embedded_cluster::start_request_tracking() {
    rd_kafka_mock_clear_requests(state_->cluster);
    rd_kafka_mock_start_request_tracking(state_->cluster);
}

void embedded_cluster::stop_request_tracking() {
    rd_kafka_mock_stop_request_tracking(state_->cluster);
    rd_kafka_mock_clear_requests(state_->cluster);
}

std::size_t embedded_cluster::requests_received(kafka_api api) const {
    std::size_t count = 0;
    rd_kafka_mock_request_t** requests = rd_kafka_mock_get_requests(state_->cluster, &count);
    std::size_t matching = 0;
    for (std::size_t i = 0; i < count; ++i)
        matching += rd_kafka_mock_request_api_key(requests[i]) == static_cast<std::int16_t>(api);
    rd_kafka_mock_request_destroy_array(requests, count);
    return matching;
}

void embedded_cluster::set_group_coordinator(const std::string& group, int broker_id) {
    detail::throw_if_error(
        rd_kafka_mock_coordinator_set(state_->cluster, "group", group.c_str(), broker_id),
        "set coordinator of " + group);
}

void embedded_cluster::set_partition_leader(const std::string& topic, int partition,
                                            int broker_id) {
    detail::throw_if_error(
        rd_kafka_mock_partition_set_leader(state_->cluster, topic.c_str(), partition, broker_id),
        "set leader of " + topic);
}

void embedded_cluster::set_broker_rtt(int broker_id, std::chrono::milliseconds rtt) {
    detail::throw_if_error(
        rd_kafka_mock_broker_set_rtt(state_->cluster, broker_id, static_cast<int>(rtt.count())),
        "set broker rtt");
}

void* embedded_cluster::native_handle() const noexcept {
    return state_->cluster;
}

}  // namespace kt
