// The host's metrics and health, aggregated from its parts. Any thread, under host_core's lock.
#include "host/host_metrics.hpp"

#include <map>
#include <string>

#include "consumer/shared_consumer.hpp"
#include "monitoring.hpp"

namespace kt::detail {
namespace {

/// Adds one consumer's view to its group's load (partitions counted once per topic).
void add_load(group_load& load, const consumer_view& view) {
    load.group = view.consumer.group;
    load.assigned += view.consumer.assigned_partitions;
    load.lag += view.consumer.consumer_lag;
    load.consume_rate += view.consumer.consume_rate;
    load.lag_rate += view.consumer.lag_rate;
    for (const auto& topic : view.consumer.topics)
        if (auto it = view.topic_partitions.find(topic); it != view.topic_partitions.end())
            load.topic_partitions[topic] = it->second;
    load.partitions = 0;
    for (const auto& [topic, count] : load.topic_partitions) load.partitions += count;
}

}  // namespace

void aggregate_metrics(metrics_snapshot& snapshot, const consumer_pool& consumers,
                       const trigger_registry& triggers, const producer_pool& producers,
                       const health_thresholds& health, bool started, bool stopped) {
    std::map<const shared_consumer*, consumer_view> views;
    std::map<std::string, group_load> groups;
    consumers.for_each([&](const shared_consumer& consumer, unsigned references) {
        auto view = consumer.metrics();
        view.consumer.triggers = references;
        add_load(groups[view.consumer.group], view);
        snapshot.consumers.push_back(view.consumer);
        views.emplace(&consumer, std::move(view));
    });
    triggers.for_each([&](const trigger_state& trigger) {
        auto m = trigger.metrics();
        if (trigger.consumer) {
            m.group = trigger.consumer->group();
            if (auto v = views.find(trigger.consumer.get()); v != views.end())
                for (const auto& [id, partition] : v->second.partitions)
                    if (id == trigger.id) m.partitions.push_back(partition);
        }
        snapshot.triggers.push_back(std::move(m));
    });
    snapshot.producers = producers.metrics();
    for (const auto& [group, load] : groups)
        snapshot.scaling.push_back(advise_scaling(load, health));
    snapshot.health = assess_health(snapshot, health, started, stopped);
}

}  // namespace kt::detail
