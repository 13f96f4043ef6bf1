// The triggers by name with their sharing keys, those a stop retired (their stats stay
// readable), and trigger ids. Any thread, under host_core's lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kt/config.hpp>
#include <kt/metrics.hpp>

#include "shard/trigger_state.hpp"

namespace kt::detail {

class trigger_registry {
  public:
    struct trigger_entry {
        std::shared_ptr<trigger_state> trigger;
        sharing_key key;
    };

    std::uint32_t next_id() noexcept { return next_id_++; }
    bool contains(const std::string& name) const { return triggers_.count(name) > 0; }
    void add(std::shared_ptr<trigger_state> trigger, sharing_key key);
    /// The trigger named `name`, or null.
    std::shared_ptr<trigger_state> find(const std::string& name) const;
    /// Takes the trigger named `name` out, if there is one.
    std::optional<trigger_entry> remove(const std::string& name);
    /// Stop: every trigger is retired; returns them.
    std::vector<std::shared_ptr<trigger_state>> retire_all();
    /// Another trigger on the topic and group of the trigger named `name` that uses a different
    /// consumer (the two split the topic's partitions), or null.
    const trigger_state* splitting_partitions_with(const std::string& name) const;
    /// Calls `f(trigger)` for every trigger, registered ones first, then retired ones.
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& [name, entry] : triggers_) f(*entry.trigger);
        for (const auto& trigger : retired_) f(*trigger);
    }
    std::vector<trigger_stats> stats() const;

  private:
    std::map<std::string, trigger_entry> triggers_;
    std::vector<std::shared_ptr<trigger_state>> retired_;
    std::uint32_t next_id_ = 0;
};

}  // namespace kt::detail
