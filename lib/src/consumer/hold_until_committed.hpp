// At most once: fetched messages are held until a commit past them is acknowledged.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "consumer/commit_ledger.hpp"

namespace kt::detail {

/// Holds each partition's fetched messages (of type `Held`) until a commit of the offset after
/// them is acknowledged, so a crash can lose a message but never hand it out twice. At most one
/// such commit is in flight; a refused one is retried after `retry_after`. Poll thread only.
template <typename Held>
class basic_hold_until_committed {
  public:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds retry_after{100};

    /// Holds `item` (at `offset`, fetched in order); returns how many the partition holds now.
    std::size_t hold(const partition_id& id, std::int64_t offset, Held item) {
        auto& p = partitions_[id];
        p.held.emplace_back(offset, std::move(item));
        return p.held.size();
    }

    /// A commit is due: something is held, none is in flight, and no retry is pending.
    bool commit_due(clock::time_point now) const {
        return !in_flight_ && now >= retry_at_ && !partitions_.empty();
    }
    /// The commit that releases everything held: each partition at the offset after its last
    /// held message.
    std::vector<commit_entry> to_commit() const {
        std::vector<commit_entry> entries;
        for (const auto& [id, p] : partitions_) entries.push_back({id, p.held.back().first + 1});
        return entries;
    }
    void commit_sent() noexcept { in_flight_ = true; }
    bool in_flight() const noexcept { return in_flight_; }
    /// The commit could not be sent or was refused: retried after retry_after.
    void commit_failed(clock::time_point now) {
        in_flight_ = false;
        retry_at_ = now + retry_after;
    }
    /// The commit was acknowledged for `entries`: passes each message below its partition's
    /// committed offset to `release(id, item)`, in offset order.
    template <typename Release>
    void committed(std::span<const commit_entry> entries, Release&& release) {
        in_flight_ = false;
        for (const auto& e : entries) {
            auto it = partitions_.find(e.partition);
            if (it == partitions_.end()) continue;  // revoked meanwhile: its messages are gone
            auto& held = it->second.held;
            while (!held.empty() && held.front().first < e.offset) {
                release(e.partition, std::move(held.front().second));
                held.pop_front();
            }
            if (held.empty()) partitions_.erase(it);
        }
    }

    /// Drops what a revoked or lost partition holds (it goes to the next owner uncommitted).
    void forget(const partition_id& id) { partitions_.erase(id); }
    /// Drops everything and forgets the commit in flight (its client is gone or its group
    /// generation ended: no answer is expected).
    void reset() {
        partitions_.clear();
        in_flight_ = false;
    }
    std::size_t held(const partition_id& id) const {
        auto it = partitions_.find(id);
        return it == partitions_.end() ? 0 : it->second.held.size();
    }

  private:
    struct partition {
        std::deque<std::pair<std::int64_t, Held>> held;  // never empty while in the map
    };
    std::map<partition_id, partition> partitions_;
    bool in_flight_ = false;
    clock::time_point retry_at_{};
};

}  // namespace kt::detail
