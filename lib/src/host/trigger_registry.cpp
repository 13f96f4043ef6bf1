// The triggers by name, the retired ones and trigger ids. Any thread, under host_core's lock.
#include "host/trigger_registry.hpp"

namespace kt::detail {

void trigger_registry::add(std::shared_ptr<trigger_state> trigger, sharing_key key) {
    const auto name = trigger->options.name;
    triggers_[name] = {std::move(trigger), std::move(key)};
}

std::shared_ptr<trigger_state> trigger_registry::find(const std::string& name) const {
    auto it = triggers_.find(name);
    return it == triggers_.end() ? nullptr : it->second.trigger;
}

std::optional<trigger_registry::trigger_entry> trigger_registry::remove(const std::string& name) {
    auto it = triggers_.find(name);
    if (it == triggers_.end()) return std::nullopt;
    auto removed = std::move(it->second);
    triggers_.erase(it);
    return removed;
}

std::vector<std::shared_ptr<trigger_state>> trigger_registry::retire_all() {
    std::vector<std::shared_ptr<trigger_state>> triggers;
    for (auto& [name, entry] : triggers_) {
        triggers.push_back(entry.trigger);
        retired_.push_back(entry.trigger);  // stats stay readable after stop
    }
    triggers_.clear();
    return triggers;
}

const trigger_state* trigger_registry::splitting_partitions_with(const std::string& name) const {
    const auto& added = triggers_.at(name);
    const auto& opts = added.trigger->options;
    const auto group = opts.consumer.get("group.id");
    for (const auto& [other_name, entry] : triggers_) {
        const auto& other = entry.trigger->options;
        if (other_name != name && other.topic == opts.topic &&
            other.consumer.get("group.id") == group && !(entry.key == added.key))
            return entry.trigger.get();
    }
    return nullptr;
}

std::vector<trigger_stats> trigger_registry::stats() const {
    std::vector<trigger_stats> all;
    for_each([&](const trigger_state& trigger) { all.push_back(trigger.stats()); });
    return all;
}

}  // namespace kt::detail
