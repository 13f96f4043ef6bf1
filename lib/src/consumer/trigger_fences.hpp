// Triggers being removed: the fence every shard must confirm before the trigger's finished work
// is committed and its tracker forgotten, and who waits for that. Poll thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "consumer/done_handler.hpp"

namespace kt::detail {

class trigger_state;

class trigger_fences {
  public:
    /// Fences `trigger` (identified by `id`) on `shards` shards; `done` waits for all of them.
    void start(std::uint32_t id, std::shared_ptr<trigger_state> trigger, unsigned shards,
               done_handler done) {
        fences_.emplace(id, fence{std::move(trigger), shards, std::move(done)});
    }
    /// A shard confirmed the fence of trigger `id`: once every shard did, the fence ends and its
    /// waiter is returned (nullopt before, or for a trigger not fenced).
    std::optional<done_handler> confirmed(std::uint32_t id) {
        auto it = fences_.find(id);
        if (it == fences_.end() || --it->second.shards_left > 0) return std::nullopt;
        auto done = std::move(it->second.done);
        fences_.erase(it);
        return done;
    }
    /// Ends every fence (the consumer closed): their waiters.
    std::vector<done_handler> close() {
        std::vector<done_handler> waiters;
        for (auto& [id, f] : std::exchange(fences_, {})) waiters.push_back(std::move(f.done));
        return waiters;
    }

  private:
    struct fence {
        std::shared_ptr<trigger_state> trigger;  // kept until its runners confirmed
        unsigned shards_left;
        done_handler done;
    };
    std::map<std::uint32_t, fence> fences_;
};

}  // namespace kt::detail
