// What each assigned partition may commit: the lowest offset not yet completed by every trigger
// on it with the completion map of what finished above it, what was sent, and what the broker
// acknowledged.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <kt/config.hpp>
#include <kt/metrics.hpp>

#include "consumer/completion_map.hpp"
#include "consumer/offset_tracker.hpp"

namespace kt::detail {

using partition_id = std::pair<std::uint32_t, std::int32_t>;  ///< (topic id, partition)

/// A trigger as the ledger knows it: its id in this process and its completion map key.
struct ledger_trigger {
    std::uint32_t id;
    std::uint32_t key;
};

/// One partition's offsets: a tracker per trigger on its topic (keyed by trigger id), the offset
/// last sent in a commit and, at most once, the position handed out so far. Poll thread only.
class partition_ledger {
  public:
    std::uint32_t generation() const noexcept { return generation_; }

    /// Some trigger still has offsets to skip: finished before, says the committed map.
    bool restoring() const noexcept { return restoring_ > 0; }
    /// True when the committed map says `trigger` finished `offset` before: it is recorded as
    /// finished and must not be delivered.
    bool skips(std::uint32_t trigger, std::int64_t offset, std::size_t hint = 0);
    /// The last commit's map had to be cut short: the partition stays held back until it fits.
    bool map_full() const noexcept { return map_full_; }
    /// Bytes of the last commit's map.
    std::size_t map_bytes() const noexcept { return map_bytes_; }

    /// Records `offset` as handed to `trigger`; returns that trigger's backlog afterwards.
    /// `hint`: where the trigger is likely to be (its place in the route, the order trackers
    /// are added in), so fan-out to N triggers stays O(N), not O(N²); any value is correct.
    std::size_t delivered(std::uint32_t trigger, std::int64_t offset, std::size_t hint = 0);
    /// At most once: `next` is the offset after the last message handed out.
    void released(std::int64_t next) noexcept { released_ = next; }
    /// Marks `offset` finished for `trigger` unless the completion is fenced: it was delivered
    /// under another `generation` (the partition was re-assigned since) or is not in flight.
    bool completed(std::uint32_t generation, std::uint32_t trigger, std::int64_t offset) {
        return completed(generation, trigger, offset, offset) > 0;
    }
    /// completed() for every offset `trigger` has in flight in [first, last] (a run it finished
    /// in delivery order); returns how many were in flight.
    std::size_t completed(std::uint32_t generation, std::uint32_t trigger, std::int64_t first,
                          std::int64_t last);

    /// Delivered to `trigger` and not finished (0 for a trigger it does not know).
    std::size_t backlog(std::uint32_t trigger, std::size_t hint = 0) const;
    /// No trigger has a message of this partition in flight.
    bool idle() const;
    /// The offset to commit: the minimum over its triggers of their lowest unfinished offset (at
    /// least once) or the position handed out (at most once); nullopt before any delivery.
    std::optional<std::int64_t> committable(delivery_guarantee delivery) const;
    /// What each trigger finished at or above `base`, including what it has yet to skip.
    completion_map finished_above(std::int64_t base) const;

  private:
    friend class commit_ledger;
    struct trigger_entry {
        ledger_trigger trigger;
        offset_tracker tracker;
        offset_ranges skip;  // from the committed map, consumed from the front
        std::size_t skip_at = 0;
    };
    const trigger_entry* entry(std::uint32_t trigger, std::size_t hint = 0) const;
    trigger_entry* entry(std::uint32_t trigger, std::size_t hint = 0) {
        return const_cast<trigger_entry*>(std::as_const(*this).entry(trigger, hint));
    }

    std::uint32_t generation_ = 0;
    std::vector<trigger_entry> triggers_;
    // The last completion's trigger. A shard's worker finishes up to 64 messages of its lane in a
    // row, and then the next trigger in route order does: with this one and the one after it as
    // hints, fan-out to N triggers finds each completion's trigger in O(1), not O(N).
    std::size_t last_completing_ = 0;
    unsigned restoring_ = 0;         // triggers with ranges left to skip
    std::uint64_t completions_ = 0;  // finished offsets so far (a changed map)
    std::int64_t sent_ = -1;
    std::uint64_t sent_completions_ = 0;
    std::int64_t released_ = -1;
    bool map_full_ = false;
    std::size_t map_bytes_ = 0;
};

/// A partition, the offset to commit for it and the completion map above it.
struct commit_entry {
    partition_id partition;
    std::int64_t offset;
    std::string metadata = {};
    bool operator==(const commit_entry&) const = default;
};

/// The ledger of every partition assigned to one consumer. Poll thread only, except
/// acknowledged(), which any thread may read.
class commit_ledger {
  public:
    /// `completion_maps`: commits carry them (at least once only).
    explicit commit_ledger(delivery_guarantee delivery, bool completion_maps = true)
        : delivery_(delivery),
          maps_(completion_maps && delivery != delivery_guarantee::at_most_once) {}
    delivery_guarantee delivery() const noexcept { return delivery_; }
    /// Commits carry completion maps, and assignments read them back.
    bool completion_maps() const noexcept { return maps_; }

    /// A partition assigned under `generation` to the consumer, with `triggers` on its topic;
    /// `start_at` (>= 0) is a position known to be complete (resumed after a loss); `restored`:
    /// the map committed with it, each trigger skips what its section says it finished.
    partition_ledger& assign(const partition_id& id, std::uint32_t generation,
                             std::span<const ledger_trigger> triggers, std::int64_t start_at = -1,
                             const completion_map* restored = nullptr);
    /// Forgets a revoked or lost partition.
    void revoke(const partition_id& id) { partitions_.erase(id); }
    void clear() { partitions_.clear(); }
    /// Follows the triggers on `topic`: a tracker for a new one, none for one removed.
    void add_trigger(std::uint32_t topic, ledger_trigger trigger);
    void remove_trigger(std::uint32_t topic, std::uint32_t trigger);

    /// nullptr when `id` is not assigned (a completion for it is fenced).
    partition_ledger* find(const partition_id& id);
    std::optional<std::int64_t> committable(const partition_id& id) const;
    /// Every partition in `only` (all when null) has nothing in flight.
    bool idle(const std::vector<partition_id>* only = nullptr) const;

    /// Completion maps are at most this long (bytes of metadata).
    void set_map_budget(std::size_t bytes) noexcept { map_budget_ = bytes; }
    /// The budget for a broker whose offset.metadata.max.bytes is `limit`: 75 % of it (room for
    /// other writers' conventions and for growth between encoding and the commit), at most 32 KiB
    /// so a commit of many partitions stays small.
    static std::size_t map_budget_for(std::int64_t limit) noexcept;
    std::size_t map_budget() const noexcept { return map_budget_; }

    /// What to commit for `only` (every partition when null): partitions with a committable
    /// offset beyond the one last sent or new completions above it, or every committable one when
    /// `resend`; each with its completion map (at least once), which marks the partitions whose
    /// map was cut short (map_full).
    std::vector<commit_entry> to_commit(const std::vector<partition_id>* only, bool resend);
    /// The entries were sent in a commit: the next to_commit() leaves them out until they grow.
    void sent(std::span<const commit_entry> entries);
    /// A commit of them was refused: the next to_commit() includes them again.
    void refused(std::span<const commit_entry> entries);
    void refused_all();

    /// The broker acknowledged `offset` for `topic`/`partition` (never moves backwards).
    void acknowledge(std::string_view topic, std::int32_t partition, std::int64_t offset);
    /// Broker-acknowledged commits. Any thread.
    committed_offsets acknowledged() const;

  private:
    const delivery_guarantee delivery_;
    const bool maps_;
    // map_budget_for() the broker's default offset.metadata.max.bytes (4096) until it answers.
    std::size_t map_budget_ = 3072;
    std::map<partition_id, partition_ledger> partitions_;
    mutable std::mutex acknowledged_mutex_;
    committed_offsets acknowledged_;
};

}  // namespace kt::detail
