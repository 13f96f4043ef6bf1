// kt::admin: CreateTopics, metadata, watermarks, committed offsets, group descriptions and offset
// resets; the reachability probe.
#include <kt/admin.hpp>

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>

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

namespace {

using event_ptr = std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)>;

/// Sends one admin request (`send(options, queue)`) and waits for its result event; throws
/// kafka_error, prefixed with `what`, when none comes or the request as a whole failed.
template <typename Send>
event_ptr admin_request(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout,
                        const std::string& what, Send send) {
    detail::queue_ptr queue(rd_kafka_queue_new(rk));
    auto* options = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), nullptr,
                                              0);
    send(options, queue.get());
    rd_kafka_AdminOptions_destroy(options);
    event_ptr event(rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000),
                    rd_kafka_event_destroy);
    if (!event) throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__TIMED_OUT), what);
    if (const auto err = rd_kafka_event_error(event.get()))
        throw kafka_error(make_kafka_error(err),
                          fmt::format("{}: {}", what, rd_kafka_event_error_string(event.get())));
    return event;
}

using partition_key = std::pair<std::string, std::int32_t>;  // topic, partition

const char* text(const char* maybe_null) {
    return maybe_null ? maybe_null : "";
}

std::pair<std::int64_t, std::int64_t> watermarks(rd_kafka_t* rk, const std::string& topic,
                                                 std::int32_t partition,
                                                 std::chrono::milliseconds timeout) {
    std::int64_t low = 0, high = 0;
    detail::throw_if_error(
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high,
                                         static_cast<int>(timeout.count())),
        fmt::format("watermarks of {} [{}]", topic, partition));
    return {low, high};
}

detail::partition_list_ptr partition_list(const std::string& topic,
                                          const std::vector<std::int32_t>& partitions) {
    detail::partition_list_ptr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (auto p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
    return list;
}

/// Partition count of `topic` from the metadata of every topic: asking for the topic by name
/// would create it where brokers create topics on first use (the embedded cluster does, and it
/// has no DescribeTopics). Throws naming a topic that does not exist.
int existing_partition_count(rd_kafka_t* rk, const std::string& topic,
                             std::chrono::milliseconds timeout) {
    const rd_kafka_metadata_t* metadata = nullptr;
    detail::throw_if_error(
        rd_kafka_metadata(rk, 1, nullptr, &metadata, static_cast<int>(timeout.count())),
        "metadata of every topic");
    std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> owner(
        metadata, rd_kafka_metadata_destroy);
    for (int i = 0; i < metadata->topic_cnt; ++i)
        if (metadata->topics[i].topic == topic) {
            detail::throw_if_error(metadata->topics[i].err, fmt::format("topic '{}'", topic));
            return metadata->topics[i].partition_cnt;
        }
    throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
                      fmt::format("topic '{}' does not exist", topic));
}

/// Throws for the error of a group result, or of one of its partitions.
void throw_if_group_error(const rd_kafka_group_result_t* result, const std::string& what) {
    if (const auto* error = rd_kafka_group_result_error(result))
        throw kafka_error(make_kafka_error(rd_kafka_error_code(error)),
                          fmt::format("{}: {}", what, rd_kafka_error_string(error)));
    const auto* partitions = rd_kafka_group_result_partitions(result);
    for (int i = 0; partitions && i < partitions->cnt; ++i)
        detail::throw_if_error(partitions->elems[i].err,
                               fmt::format("{} ({} [{}])", what, partitions->elems[i].topic,
                                           partitions->elems[i].partition));
}

/// The single group result of a ListConsumerGroupOffsets or AlterConsumerGroupOffsets event.
template <typename Result>
const rd_kafka_group_result_t* only_group(rd_kafka_event_t* event, Result result_of,
                                          const std::string& what) {
    size_t count = 0;
    const auto** groups = result_of(event, &count);
    if (count != 1)
        throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__BAD_MSG), what + ": no result");
    throw_if_group_error(groups[0], what);
    return groups[0];
}

/// A group's state and members as DescribeConsumerGroups tells them; empty state when the
/// cluster cannot describe groups.
struct group_members {
    std::string state, type;
    std::vector<group_member> members;
    std::map<partition_key, std::size_t> owner_of;  // index into members
};

group_members describe_members(rd_kafka_t* rk, const std::string& group,
                               std::chrono::milliseconds timeout) {
    const auto what = "describe group " + group;
    const char* groups[] = {group.c_str()};
    auto describe = [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DescribeConsumerGroups(rk, groups, 1, options, queue);
    };
    const auto unsupported = make_kafka_error(RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE);
    // The embedded cluster (librdkafka's mock brokers) has neither DescribeGroups nor
    // ConsumerGroupDescribe: the state stays unknown there.
    std::optional<event_ptr> event;
    try {
        event =
            admin_request(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout, what, describe);
    } catch (const kafka_error& e) {
        if (e.code() == unsupported) return {};
        throw;
    }
    size_t count = 0;
    const auto** descriptions = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(event->get()), &count);
    if (count != 1)
        throw kafka_error(make_kafka_error(RD_KAFKA_RESP_ERR__BAD_MSG), what + ": no result");
    const auto* description = descriptions[0];
    if (const auto* error = rd_kafka_ConsumerGroupDescription_error(description)) {
        if (make_kafka_error(rd_kafka_error_code(error)) == unsupported) return {};
        throw kafka_error(make_kafka_error(rd_kafka_error_code(error)),
                          fmt::format("{}: {}", what, rd_kafka_error_string(error)));
    }
    group_members result;
    result.state = text(
        rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(description)));
    const auto type = rd_kafka_ConsumerGroupDescription_type(description);
    if (type != RD_KAFKA_CONSUMER_GROUP_TYPE_UNKNOWN)
        result.type = text(rd_kafka_consumer_group_type_name(type));
    for (size_t i = 0; i < rd_kafka_ConsumerGroupDescription_member_count(description); ++i) {
        const auto* member = rd_kafka_ConsumerGroupDescription_member(description, i);
        result.members.push_back({text(rd_kafka_MemberDescription_consumer_id(member)),
                                  text(rd_kafka_MemberDescription_client_id(member)),
                                  text(rd_kafka_MemberDescription_host(member))});
        const auto* assignment = rd_kafka_MemberDescription_assignment(member);
        const auto* assigned =
            assignment ? rd_kafka_MemberAssignment_partitions(assignment) : nullptr;
        for (int j = 0; assigned && j < assigned->cnt; ++j)
            result.owner_of[{assigned->elems[j].topic, assigned->elems[j].partition}] = i;
    }
    return result;
}

/// (topic, partition) → committed offset of `group` (-1: none) for `partitions`, or (nullptr)
/// for every partition the group committed to.
std::map<partition_key, std::int64_t> group_offsets(
    rd_kafka_t* rk, const std::string& group, const rd_kafka_topic_partition_list_t* partitions,
    std::chrono::milliseconds timeout) {
    const auto what = "committed offsets of group " + group;
    const auto event = admin_request(
        rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout, what,
        [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
            auto* request = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), partitions);
            rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue);
            rd_kafka_ListConsumerGroupOffsets_destroy(request);
        });
    const auto* result = only_group(
        event.get(),
        [](rd_kafka_event_t* e, size_t* count) {
            return rd_kafka_ListConsumerGroupOffsets_result_groups(
                rd_kafka_event_ListConsumerGroupOffsets_result(e), count);
        },
        what);
    std::map<partition_key, std::int64_t> offsets;
    const auto* list = rd_kafka_group_result_partitions(result);
    for (int i = 0; list && i < list->cnt; ++i)
        offsets[{list->elems[i].topic, list->elems[i].partition}] =
            std::max<std::int64_t>(list->elems[i].offset, -1);
    return offsets;
}

/// The refusal of a reset while `group` has members (kafka-consumer-groups.sh refuses too).
kafka_error active_group(const std::string& group, const std::string& why) {
    return kafka_error(
        make_kafka_error(RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP),
        fmt::format("cannot reset the offsets of group '{}': {}; offsets can only be reset while "
                    "the group has no members (stop its consumers first)",
                    group, why));
}

/// Commits `plan` for `group` with AlterConsumerGroupOffsets (a commit from outside the group,
/// which brokers accept only while the group has no members).
void commit_plan(rd_kafka_t* rk, const std::string& group, const std::vector<offset_reset>& plan,
                 std::chrono::milliseconds timeout) {
    detail::partition_list_ptr list(
        rd_kafka_topic_partition_list_new(static_cast<int>(plan.size())));
    for (const auto& p : plan)
        rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset =
            p.new_offset;
    const auto what = "reset offsets of group " + group;
    try {
        const auto event = admin_request(
            rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, timeout, what,
            [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                auto* request = rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), list.get());
                rd_kafka_AlterConsumerGroupOffsets(rk, &request, 1, options, queue);
                rd_kafka_AlterConsumerGroupOffsets_destroy(request);
            });
        only_group(
            event.get(),
            [](rd_kafka_event_t* e, size_t* count) {
                return rd_kafka_AlterConsumerGroupOffsets_result_groups(
                    rd_kafka_event_AlterConsumerGroupOffsets_result(e), count);
            },
            what);
    } catch (const kafka_error& e) {
        if (e.code() != make_kafka_error(RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)) throw;
        throw active_group(group,
                           "the cluster refused the commit from outside the group (Unknown "
                           "member): it has members, or (the embedded cluster, which keeps a "
                           "group's membership) had some");
    }
}

}  // namespace

bool admin::create_topic(const std::string& topic, int partitions, int replication_factor,
                         std::chrono::milliseconds timeout) {
    auto* rk = state_->client.get();
    char reason[512];
    auto* new_topic =
        rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, reason, sizeof reason);
    if (!new_topic)
        throw config_error("topic", fmt::format("cannot create topic '{}': {}", topic, reason));
    const auto event =
        admin_request(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, "create topic " + topic,
                      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
                          rd_kafka_AdminOptions_set_operation_timeout(
                              options, static_cast<int>(timeout.count()), nullptr, 0);
                          rd_kafka_CreateTopics(rk, &new_topic, 1, options, queue);
                          rd_kafka_NewTopic_destroy(new_topic);
                      });
    size_t count = 0;
    const auto* result = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(event.get()), &count);
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
    for (int p = 0; p < partitions; ++p)
        result[p] = watermarks(state_->client.get(), topic, p, timeout).second;
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

offset_target offset_target::parse(std::string_view text) {
    auto number = [](std::string_view digits) -> std::optional<std::int64_t> {
        std::int64_t value = 0;
        const auto* end = digits.data() + digits.size();
        const auto [stop, ec] = std::from_chars(digits.data(), end, value);
        if (digits.empty() || ec != std::errc{} || stop != end || value < 0) return std::nullopt;
        return value;
    };
    if (text == "earliest") return {kind::earliest};
    if (text == "latest") return {kind::latest};
    for (const auto& [prefix, what] : {std::pair{std::string_view("timestamp:"), kind::timestamp},
                                       std::pair{std::string_view("offset:"), kind::offset}})
        if (text.starts_with(prefix))
            if (const auto value = number(text.substr(prefix.size()))) return {what, *value};
    throw config_error("to", fmt::format("invalid offset target '{}': use earliest, latest, "
                                         "timestamp:<ms since the epoch> or offset:<n>",
                                         text));
}

group_description admin::describe_group(const std::string& group, const std::string& topic,
                                        std::chrono::milliseconds timeout) {
    auto* rk = state_->client.get();
    auto members = describe_members(rk, group, timeout);
    detail::partition_list_ptr wanted;
    if (!topic.empty()) {
        std::vector<std::int32_t> all(existing_partition_count(rk, topic, timeout));
        for (std::size_t p = 0; p < all.size(); ++p) all[p] = static_cast<std::int32_t>(p);
        wanted = partition_list(topic, all);
    }
    const auto committed = group_offsets(rk, group, wanted.get(), timeout);
    std::set<partition_key> keys;
    for (const auto& [key, offset] : committed) keys.insert(key);
    for (const auto& [key, member] : members.owner_of)
        if (topic.empty() || key.first == topic) keys.insert(key);

    group_description result{.group = group,
                             .state = std::move(members.state),
                             .type = std::move(members.type),
                             .members = members.members};
    for (const auto& [t, p] : keys) {
        auto& row = result.partitions.emplace_back(partition_lag{.topic = t, .partition = p});
        std::tie(row.low_watermark, row.high_watermark) = watermarks(rk, t, p, timeout);
        if (const auto it = committed.find({t, p}); it != committed.end() && it->second >= 0)
            row.committed = it->second;
        row.lag = row.high_watermark - row.committed.value_or(row.low_watermark);
        if (const auto it = members.owner_of.find({t, p}); it != members.owner_of.end())
            row.owner = members.members[it->second];
    }
    return result;
}

std::vector<offset_reset> admin::reset_offsets(const std::string& group, const std::string& topic,
                                               const offset_target& target,
                                               const std::vector<std::int32_t>& partitions,
                                               bool dry_run, std::chrono::milliseconds timeout) {
    auto* rk = state_->client.get();
    const int count = existing_partition_count(rk, topic, timeout);
    std::set<std::int32_t> chosen(partitions.begin(), partitions.end());
    for (auto p : chosen)
        if (p < 0 || p >= count)
            throw config_error("partitions",
                               fmt::format("topic '{}' has no partition {} (it has partitions "
                                           "0..{})",
                                           topic, p, count - 1));
    for (std::int32_t p = 0; partitions.empty() && p < count; ++p) chosen.insert(p);

    const auto members = describe_members(rk, group, timeout);
    if (!members.state.empty() && members.state != "Empty" && members.state != "Dead")
        throw active_group(group, fmt::format("it is {} with {} member(s)", members.state,
                                              members.members.size()));

    const auto list = partition_list(topic, {chosen.begin(), chosen.end()});
    const auto current = group_offsets(rk, group, list.get(), timeout);
    if (target.what == offset_target::kind::timestamp) {
        for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = target.value;
        detail::throw_if_error(
            rd_kafka_offsets_for_times(rk, list.get(), static_cast<int>(timeout.count())),
            fmt::format("offsets of {} at {} ms", topic, target.value));
    }
    std::vector<offset_reset> plan;
    for (int i = 0; i < list->cnt; ++i) {
        const auto& p = list->elems[i];
        auto& row = plan.emplace_back(offset_reset{.topic = topic, .partition = p.partition});
        if (const auto it = current.find({topic, p.partition});
            it != current.end() && it->second >= 0)
            row.current = it->second;
        const auto [low, high] = watermarks(rk, topic, p.partition, timeout);
        switch (target.what) {
            case offset_target::kind::earliest:
                row.new_offset = low;
                break;
            case offset_target::kind::latest:
                row.new_offset = high;
                break;
            case offset_target::kind::timestamp:
                detail::throw_if_error(p.err, fmt::format("offset of {} [{}] at {} ms", topic,
                                                          p.partition, target.value));
                row.new_offset = p.offset >= 0 ? p.offset : high;  // no record at or after it
                break;
            case offset_target::kind::offset:
                row.new_offset = std::clamp(target.value, low, high);
                row.clamped = row.new_offset != target.value;
                break;
        }
    }
    if (!dry_run) commit_plan(rk, group, plan, timeout);
    return plan;
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
