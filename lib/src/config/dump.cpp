// The redacted dump: an app_config's effective configuration as JSON, secret values as "***".
#include <kt/config_file.hpp>

#include <boost/json.hpp>

#include "config/schema.hpp"

namespace kt {
namespace {
namespace json = boost::json;
using detail::config::delivery_choices;
using detail::config::name_of;
using detail::config::ordering_choices;
using detail::config::sharing_choices;

json::object redacted_properties(const consumer_config& config) {
    json::object out;
    for (const auto& [name, value] : config.properties())
        out[name] = is_secret_property(name) ? "***" : value;
    return out;
}

json::array string_array(const std::vector<std::string>& items) {
    return json::array(items.begin(), items.end());
}

json::object dump_trigger(const configured_trigger& t) {
    const auto& o = t.options;
    json::object out{{"name", o.name},
                     {"consumer", t.consumer},
                     {"topic", o.topic},
                     {"handler", t.handler},
                     {"ordering", name_of(o.ordering, ordering_choices)},
                     {"max_in_flight", o.max_in_flight},
                     {"max_backlog", o.max_backlog},
                     {"delivery", name_of(o.delivery, delivery_choices)},
                     {"retry", json::object{{"max_attempts", o.retry.max_attempts},
                                            {"initial_backoff_ms", o.retry.initial_backoff.count()},
                                            {"max_backoff_ms", o.retry.max_backoff.count()},
                                            {"multiplier", o.retry.multiplier},
                                            {"jitter", o.retry.jitter}}},
                     {"dead_letter", json::object{{"enabled", o.dead_letter.enabled},
                                                  {"topic", o.dead_letter.topic}}}};
    if (!t.ordering_key.empty()) out["ordering_key"] = t.ordering_key;
    if (!o.retry_topics.delays.empty()) {
        json::array delays;
        for (const auto d : o.retry_topics.delays)
            delays.emplace_back(fmt::format("{}ms", d.count()));
        out["retry_topics"] = json::object{{"delays", std::move(delays)},
                                           {"topic_prefix", o.retry_topics.topic_prefix}};
    }
    if (!t.dead_letter_producer.empty())
        out["dead_letter"].as_object()["producer"] = t.dead_letter_producer;
    if (t.batch)
        out["batch"] = json::object{{"max_messages", t.batch->max_messages},
                                    {"max_wait_ms", t.batch->max_wait.count()}};
    if (o.delivery == delivery_guarantee::exactly_once) {
        out["transactional_id"] = o.transactional_id;
        out["transaction_max_messages"] = o.transaction_max_messages;
        out["transaction_interval_ms"] = o.transaction_interval.count();
    }
    return out;
}

}  // namespace

std::string dump_redacted(const app_config& config) {
    const auto& host = config.host;
    json::array consumers, producers, triggers;
    for (const auto& c : config.consumers)
        consumers.push_back(json::object{{"name", c.name},
                                         {"topics", string_array(c.topics)},
                                         {"delivery", name_of(c.delivery, delivery_choices)},
                                         {"properties", redacted_properties(c.config)}});
    for (const auto& p : config.producers)
        producers.push_back(json::object{{"name", p.name},
                                         {"topics", string_array(p.topics)},
                                         {"delivery", name_of(p.delivery, delivery_choices)},
                                         {"properties", redacted_properties(p.config)}});
    for (const auto& t : config.triggers) triggers.push_back(dump_trigger(t));
    json::object host_json{
        {"sharing", name_of(host.sharing, sharing_choices)},
        {"commit_interval_ms", host.commit_interval.count()},
        {"commit_after", host.commit_after},
        {"completion_map", host.completion_map},
        {"drain_timeout_ms", host.drain_timeout.count()},
        {"revoke_drain_timeout_ms", host.revoke_drain_timeout.count()},
        {"statistics_interval_ms", host.statistics_interval.count()},
        {"outage_recreate_after_ms", host.outage_recreate_after.count()},
        {"health", json::object{{"stuck_after_ms", host.health.stuck_after.count()},
                                {"poll_stall_after_ms", host.health.poll_stall_after.count()},
                                {"max_lag", host.health.max_lag},
                                {"scale_up_lag", host.health.scale_up_lag}}},
        {"channel_capacity", host.channel_capacity}};
    return json::serialize(json::object{{"host", std::move(host_json)},
                                        {"consumers", std::move(consumers)},
                                        {"producers", std::move(producers)},
                                        {"triggers", std::move(triggers)}});
}

}  // namespace kt
