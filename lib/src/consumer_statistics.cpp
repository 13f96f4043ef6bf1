// Reduces librdkafka's statistics JSON with Boost.JSON (see STATISTICS.md of librdkafka).
#include "consumer_statistics.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace json = boost::json;

namespace kt::detail {

namespace {

std::int64_t int_at(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (!value) return 0;
    if (value->is_int64()) return value->as_int64();
    if (value->is_uint64()) return static_cast<std::int64_t>(value->as_uint64());
    if (value->is_double()) return static_cast<std::int64_t>(value->as_double());
    return 0;
}

std::string string_at(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value && value->is_string() ? std::string(value->as_string()) : std::string{};
}

void read_brokers(const json::object& brokers, consumer_statistics& out) {
    for (const auto& [name, value] : brokers) {
        if (!value.is_object()) continue;
        const auto& broker = value.as_object();
        ++out.broker_threads;
        // The internal broker and logical ones (GroupCoordinator) have threads but no address.
        if (const auto source = string_at(broker, "source");
            source == "internal" || source == "logical")
            continue;
        broker_metrics b{.name = string_at(broker, "name"), .state = string_at(broker, "state")};
        if (const auto* rtt = broker.if_contains("rtt"); rtt && rtt->is_object())
            b.rtt_avg_seconds = static_cast<double>(int_at(rtt->as_object(), "avg")) / 1e6;
        out.any_broker_up |= b.state == "UP";
        out.brokers.push_back(std::move(b));
    }
}

void read_partitions(const json::object& topics, consumer_statistics& out) {
    for (const auto& [topic, value] : topics) {
        const auto* partitions =
            value.is_object() ? value.as_object().if_contains("partitions") : nullptr;
        if (!partitions || !partitions->is_object()) continue;
        auto& count = out.topic_partitions[std::string(topic)];
        for (const auto& [id, p] : partitions->as_object()) {
            if (!p.is_object() || id == "-1") continue;  // -1: librdkafka's unassigned queue
            ++count;
            const auto& partition = p.as_object();
            out.fetchq_cnt += std::max<std::int64_t>(0, int_at(partition, "fetchq_cnt"));
            if (const auto lag = int_at(partition, "consumer_lag"); lag > 0)
                out.consumer_lag += lag;
        }
    }
}

}  // namespace

std::optional<consumer_statistics> parse_statistics(std::string_view text) {
    boost::system::error_code ec;
    const auto root = json::parse(text, ec);
    if (ec || !root.is_object()) return std::nullopt;
    const auto& object = root.as_object();
    consumer_statistics out{.timestamp_us = int_at(object, "ts"),
                            .rxmsgs = static_cast<std::uint64_t>(int_at(object, "rxmsgs"))};
    if (const auto* brokers = object.if_contains("brokers"); brokers && brokers->is_object())
        read_brokers(brokers->as_object(), out);
    if (const auto* topics = object.if_contains("topics"); topics && topics->is_object())
        read_partitions(topics->as_object(), out);
    if (const auto* group = object.if_contains("cgrp"); group && group->is_object())
        out.join_state = string_at(group->as_object(), "join_state");
    return out;
}

statistics_rates rates_between(const consumer_statistics& before,
                               const consumer_statistics& after) {
    const double seconds = static_cast<double>(after.timestamp_us - before.timestamp_us) / 1e6;
    if (seconds <= 0 || after.rxmsgs < before.rxmsgs) return {};
    return {.consume_rate = static_cast<double>(after.rxmsgs - before.rxmsgs) / seconds,
            .lag_rate = static_cast<double>(after.consumer_lag - before.consumer_lag) / seconds};
}

}  // namespace kt::detail
