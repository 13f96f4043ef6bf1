// The effective consumer config.
#include "consumer_conf.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace kt::detail {
namespace {

/// Properties of the classic group protocol that group.protocol=consumer (KIP-848) refuses, and
/// where their job went.
struct classic_only {
    std::string_view name;
    std::string_view instead;
};
constexpr classic_only classic_only_properties[] = {
    {"partition.assignment.strategy",
     "the broker assigns partitions; choose its assignor with 'group.remote.assignor'"},
    {"session.timeout.ms", "the broker sets it ('group.consumer.session.timeout.ms')"},
    {"heartbeat.interval.ms", "the broker sets it ('group.consumer.heartbeat.interval.ms')"},
    {"group.protocol.type", "it belongs to the classic protocol"},
};

bool uses_consumer_protocol(const consumer_config& config) {
    std::string protocol = config.get("group.protocol");
    std::transform(protocol.begin(), protocol.end(), protocol.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return protocol == "consumer";
}

/// The managed properties and, under group.protocol=consumer, the classic-only ones.
void check_property_rules(const consumer_config& config) {
    for (const auto& [name, value] : config.properties()) check_managed_property(name, value);
    if (!uses_consumer_protocol(config)) return;
    for (const auto& p : classic_only_properties)
        if (config.contains(std::string(p.name)))
            throw config_error(std::string(p.name),
                               fmt::format("'{}' is not supported with group.protocol=consumer "
                                           "(KIP-848): {}",
                                           p.name, p.instead));
}

}  // namespace

conf_ptr consumer_conf(const consumer_config& config, const host_options& options) {
    if (!config.contains("bootstrap.servers") && !config.contains("metadata.broker.list"))
        throw config_error("bootstrap.servers", "consumer config needs 'bootstrap.servers'");
    if (config.get("group.id").empty())
        throw config_error("group.id", "consumer config needs a non-empty 'group.id'");
    check_property_rules(config);
    const bool consumer_protocol = uses_consumer_protocol(config);

    consumer_config effective = config;
    effective.set("enable.auto.commit", "false");
    effective.set("enable.auto.offset.store", "false");
    // The consumer protocol is incremental by design; the classic one is made so here.
    if (!consumer_protocol && !effective.contains("partition.assignment.strategy"))
        effective.set("partition.assignment.strategy", "cooperative-sticky");
    if (!effective.contains("auto.offset.reset")) effective.set("auto.offset.reset", "earliest");
    if (!effective.contains("statistics.interval.ms") && options.statistics_interval.count() > 0)
        effective.set("statistics.interval.ms",
                      std::to_string(options.statistics_interval.count()));
    return make_conf(effective);
}

}  // namespace kt::detail

namespace kt {

void check_consumer_properties(const consumer_config& config) {
    detail::check_property_rules(config);
    (void)detail::make_conf(config);  // librdkafka's verdict on each name and value
}

}  // namespace kt
