// The consumer's rd_kafka_t: creation, queues, subscription, assignment, commits, close.
#include "kafka_client.hpp"

#include <cstdlib>
#include <cstring>
#include <variant>

#include <fmt/format.h>

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
    admin_queue_.reset(rd_kafka_queue_new(client_.get()));
    limit_request_ = limit_request::unasked;
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), &kafka_client::queue_event, this);
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), &kafka_client::queue_event, this);
}

void kafka_client::end(client_end how) {
    rd_kafka_queue_cb_event_enable(commit_queue_.get(), nullptr, nullptr);
    rd_kafka_queue_cb_event_enable(consumer_queue_.get(), nullptr, nullptr);
    commit_queue_.reset();
    consumer_queue_.reset();
    admin_queue_.reset();
    std::lock_guard lock(mutex_);
    switch (how) {
        case client_end::destroy:
            client_.reset();
            break;
        case client_end::abandon_group:
            // A fenced member cannot leave its group: destroy without the consumer close. Not on
            // the poll thread, which goes on with the next client: under group.protocol=consumer
            // librdkafka 2.14.2 holds the destroy while commits wait for an unreachable
            // coordinator, up to session.timeout.ms (45 s; that protocol takes no other value).
            std::erase_if(abandoned_,
                          [](const abandoned_client& c) { return c.destroyed->load(); });
            {
                auto destroyed = std::make_shared<std::atomic<bool>>(false);
                std::jthread destroying([rk = client_.release(), destroyed] {
                    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
                    destroyed->store(true);
                });
                abandoned_.push_back({std::move(destroyed), std::move(destroying)});
            }
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

namespace {

constexpr const char* metadata_limit_name = "offset.metadata.max.bytes";

// The limit in a DescribeConfigs result, or the reason there is none.
std::variant<std::int64_t, std::string> metadata_limit_of(rd_kafka_event_t* event) {
    if (rd_kafka_event_error(event)) return std::string(rd_kafka_event_error_string(event));
    const auto* result = rd_kafka_event_DescribeConfigs_result(event);
    std::size_t count = 0;
    const auto** resources =
        result ? rd_kafka_DescribeConfigs_result_resources(result, &count) : nullptr;
    if (count != 1) return std::string("no resource in the answer");
    if (rd_kafka_ConfigResource_error(resources[0]))
        return std::string(rd_kafka_ConfigResource_error_string(resources[0]));
    std::size_t entries = 0;
    const auto** configs = rd_kafka_ConfigResource_configs(resources[0], &entries);
    for (std::size_t i = 0; i < entries; ++i) {
        const char* value = rd_kafka_ConfigEntry_value(configs[i]);
        if (std::strcmp(rd_kafka_ConfigEntry_name(configs[i]), metadata_limit_name) != 0 || !value)
            continue;
        char* end = nullptr;
        const long long limit = std::strtoll(value, &end, 10);
        if (end == value || *end || limit < 0) return fmt::format("not a size: '{}'", value);
        return static_cast<std::int64_t>(limit);
    }
    return fmt::format("the broker did not report {}", metadata_limit_name);
}

}  // namespace

std::optional<std::int64_t> kafka_client::take_offset_metadata_limit() {
    if (!client_ || limit_request_ == limit_request::done) return std::nullopt;
    if (limit_request_ == limit_request::unasked) {
        const auto broker = rd_kafka_controllerid(client_.get(), 0);  // any broker known yet
        if (broker < 0) return std::nullopt;
        const auto name = std::to_string(broker);
        auto* resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, name.c_str());
        rd_kafka_ConfigResource_set_config(resource, metadata_limit_name, nullptr);
        auto* options = rd_kafka_AdminOptions_new(client_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_AdminOptions_set_request_timeout(options, 10000, nullptr, 0);
        rd_kafka_DescribeConfigs(client_.get(), &resource, 1, options, admin_queue_.get());
        rd_kafka_AdminOptions_destroy(options);
        rd_kafka_ConfigResource_destroy(resource);
        log(log_level::debug, "group '{}': asking broker {} for {}", group_, broker,
            metadata_limit_name);
        limit_request_ = limit_request::asked;
        return std::nullopt;
    }
    rd_kafka_event_t* event = rd_kafka_queue_poll(admin_queue_.get(), 0);
    if (!event) return std::nullopt;
    limit_request_ = limit_request::done;
    auto limit = metadata_limit_of(event);
    rd_kafka_event_destroy(event);
    if (auto* why = std::get_if<std::string>(&limit)) {
        log(log_level::debug, "group '{}': {} unknown ({}): the default applies", group_,
            metadata_limit_name, *why);
        return std::nullopt;
    }
    return std::get<std::int64_t>(limit);
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
