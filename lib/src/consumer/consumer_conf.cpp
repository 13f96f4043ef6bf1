// The effective consumer config.
#include "consumer_conf.hpp"

#include <string>

namespace kt::detail {

conf_ptr consumer_conf(const consumer_config& config, const host_options& options) {
    if (!config.contains("bootstrap.servers") && !config.contains("metadata.broker.list"))
        throw config_error("bootstrap.servers", "consumer config needs 'bootstrap.servers'");
    if (config.get("group.id").empty())
        throw config_error("group.id", "consumer config needs a non-empty 'group.id'");
    for (const auto& [name, value] : config.properties()) check_managed_property(name, value);

    consumer_config effective = config;
    effective.set("enable.auto.commit", "false");
    effective.set("enable.auto.offset.store", "false");
    if (!effective.contains("partition.assignment.strategy"))
        effective.set("partition.assignment.strategy", "cooperative-sticky");
    if (!effective.contains("auto.offset.reset")) effective.set("auto.offset.reset", "earliest");
    if (!effective.contains("statistics.interval.ms") && options.statistics_interval.count() > 0)
        effective.set("statistics.interval.ms",
                      std::to_string(options.statistics_interval.count()));
    return make_conf(effective);
}

}  // namespace kt::detail
