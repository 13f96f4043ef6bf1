// The consumer's rd_kafka_t: creation, queues, subscription, assignment, commits, close.
#include "kafka_client.hpp"

#include <cstring>

#include "log.hpp"

namespace kt::detail {

partition_queue::partition_queue(rd_kafka_queue_t* queue, client_events& events) : queue_(queue) {
    rd_kafka_queue_forward(queue_, nullptr);
    rd_kafka_queue_cb_event_enable(
        queue_, [](rd_kafka_t*, void* sink) { static_cast<client_events*>(sink)->wake(); },
        &events);
}

partition_queue::~partition_queue() {
    rd_kafka_queue_cb_event_enable(queue_, nullptr, nullptr);
    rd_kafka_queue_destroy(queue_);
}

std::size_t partition_queue::consume(std::span<rd_kafka_message_t*> into) {
    const auto n = rd_kafka_consume_batch_queue(queue_, 0, into.data(), into.size());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

kafka_client::kafka_client(std::string group, conf_ptr conf, client_events& events)
    : group_(std::move(group)), conf_(std::move(conf)), events_(events) {
    rd_kafka_conf_set_rebalance_cb(conf_.get(), &kafka_client::rebalance_trampoline);
    rd_kafka_conf_set_stats_cb(conf_.get(), &kafka_client::statistics_trampoline);
    rd_kafka_conf_set_opaque(conf_.get(), this);
}

kafka_client::~kafka_client() = default;

void kafka_client::open() {
    auto client = make_client(RD_KAFKA_CONSUMER, conf_ptr(rd_kafka_conf_dup(conf_.get())));
    {
        std::lock_guard lock(mutex_);
        client_ = std::move(client);
    }
    rd_kafka_poll_set_consumer(client_.get());
    consumer_queue_.reset(rd_kafka_queue_get_consumer(client_.get()));
    commit_queue_.reset(rd_kafka_queue_new(client_.get()));
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &kafka_client::queue_event, this);
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), &kafka_client::queue_event, this);
}

void kafka_client::end(client_end how) {
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), nullptr, nullptr);
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), nullptr, nullptr);
    commit_queue_.reset();
    consumer_queue_.reset();
    std::lock_guard lock(mutex_);
    switch (how) {
        case client_end::destroy:
            client_.reset();
            break;
        case client_end::abandon_group:
            // A fenced member cannot leave its group: destroy without the consumer close.
            rd_kafka_destroy_flags(client_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
            break;
        case client_end::leak:
            (void)client_.release();
            break;
    }
}

std::string kafka_client::name() const {
    return rd_kafka_name(client_.get());
}

std::optional<std::string> kafka_client::fatal_error() const {
    char reason[512] = "";
    if (!rd_kafka_fatal_error(client_.get(), reason, sizeof reason)) return std::nullopt;
    return std::string(reason);
}

rd_kafka_consumer_group_metadata_t* kafka_client::group_metadata() const {
    std::lock_guard lock(mutex_);  // the poll thread may be replacing the client
    return client_ ? rd_kafka_consumer_group_metadata(client_.get()) : nullptr;
}

rd_kafka_message_t* kafka_client::poll() {
    return rd_kafka_consumer_poll(client_.get(), 0);
}

std::unique_ptr<partition_queue> kafka_client::take_partition_queue(const char* topic,
                                                                    std::int32_t partition) {
    auto* queue = rd_kafka_queue_get_partition(client_.get(), topic, partition);
    return queue ? std::make_unique<partition_queue>(queue, events_) : nullptr;
}

rd_kafka_resp_err_t kafka_client::subscribe(const std::vector<std::string>& topics) {
    if (topics.empty()) return rd_kafka_unsubscribe(client_.get());
    partition_list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
    for (const auto& topic : topics)
        rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
    return rd_kafka_subscribe(client_.get(), list.get());
}

bool kafka_client::cooperative() const {
    const char* protocol = rd_kafka_rebalance_protocol(client_.get());
    return protocol && std::strcmp(protocol, "COOPERATIVE") == 0;
}

void kafka_client::assign(const rd_kafka_topic_partition_list_t* partitions) {
    change_assignment(partitions, true);
}

void kafka_client::unassign(const rd_kafka_topic_partition_list_t* partitions) {
    change_assignment(partitions, false);
}

void kafka_client::change_assignment(const rd_kafka_topic_partition_list_t* partitions, bool add) {
    if (!cooperative()) {  // eager: the whole assignment is replaced
        rd_kafka_assign(client_.get(), add ? partitions : nullptr);
        return;
    }
    auto* error = add ? rd_kafka_incremental_assign(client_.get(), partitions)
                      : rd_kafka_incremental_unassign(client_.get(), partitions);
    if (!error) return;
    log(log_level::error, "group '{}': {} failed: {}", group_, add ? "assign" : "unassign",
        rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
}

void kafka_client::clear_assignment() {
    rd_kafka_assign(client_.get(), nullptr);
}

bool kafka_client::assignment_lost() const {
    return rd_kafka_assignment_lost(client_.get());
}

void kafka_client::pause(const rd_kafka_topic_partition_list_t* partitions) {
    // librdkafka takes a non-const list (it writes each entry's err).
    rd_kafka_pause_partitions(client_.get(),
                              const_cast<rd_kafka_topic_partition_list_t*>(partitions));
}

void kafka_client::pause_assignment() {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(client_.get(), &assigned)) return;
    partition_list_ptr owner(assigned);
    pause(assigned);
}

rd_kafka_resp_err_t kafka_client::commit_async(const rd_kafka_topic_partition_list_t* offsets,
                                               void* opaque) {
    return rd_kafka_commit_queue(client_.get(), offsets, commit_queue_.get(),
                                 &kafka_client::commit_trampoline, opaque);
}

rd_kafka_resp_err_t kafka_client::commit_sync(const rd_kafka_topic_partition_list_t* offsets) {
    return rd_kafka_commit(client_.get(), offsets, 0);
}

void kafka_client::serve_commit_answers() {
    rd_kafka_queue_poll_callback(commit_queue_.get(), 0);
}

rd_kafka_resp_err_t kafka_client::read_committed(rd_kafka_topic_partition_list_t* partitions,
                                                 std::chrono::milliseconds timeout) {
    return rd_kafka_committed(client_.get(), partitions, static_cast<int>(timeout.count()));
}

std::optional<std::int64_t> kafka_client::high_watermark(const std::string& topic,
                                                         std::int32_t partition) const {
    std::int64_t low = -1, high = -1;
    if (!client_ ||
        rd_kafka_get_watermark_offsets(client_.get(), topic.c_str(), partition, &low, &high) ||
        high < 0)
        return std::nullopt;
    return high;
}

void kafka_client::close() {
    rd_kafka_consumer_close(client_.get());
}

void kafka_client::queue_event(rd_kafka_t*, void* opaque) {
    static_cast<kafka_client*>(opaque)->events_.wake();
}

void kafka_client::rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                        rd_kafka_topic_partition_list_t* partitions, void*) {
    static_cast<kafka_client*>(rd_kafka_opaque(rk))->events_.on_rebalance(err, partitions);
}

int kafka_client::statistics_trampoline(rd_kafka_t*, char* json, std::size_t length, void* opaque) {
    static_cast<kafka_client*>(opaque)->events_.on_statistics({json, length});
    return 0;  // librdkafka frees the JSON
}

void kafka_client::commit_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    static_cast<kafka_client*>(rd_kafka_opaque(rk))->events_.on_commit(err, offsets, opaque);
}

}  // namespace kt::detail
