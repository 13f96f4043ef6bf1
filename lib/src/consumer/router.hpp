// Where a fetched message goes: the topic table, the triggers routed to each topic, the assigned
// partitions (shard, hold-back, queue, ledger entry), and the hand-off into the shards' rings.
// Poll thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "consumer/commit_ledger.hpp"
#include "consumer/kafka_client.hpp"
#include "consumer/message_records.hpp"
#include "rdkafka_handles.hpp"
#include "retry_topics.hpp"
#include "shard/shard_link.hpp"

namespace kt::detail {

class trigger_state;

/// The trigger as the commit ledger knows it.
ledger_trigger ledger_trigger_of(const trigger_state& trigger);

struct route_entry {
    std::shared_ptr<trigger_state> trigger;
    bool detaching = false;  // fenced: no new deliveries; its tracker still counts
};

struct partition_state {
    unsigned shard = 0;
    bool paused = false;  // held back: its queue is not drained
    // For the delivery-stall health check: the offset after the last one fetched (-1: none yet),
    // and since when it waits for a delivery while messages lie beyond it.
    std::int64_t next_offset = -1;
    std::chrono::steady_clock::time_point waiting_since{};
    std::unique_ptr<partition_queue> queue;
    partition_ledger* ledger = nullptr;  // its entry in the commit ledger
    // A retry topic's records from the first one not due yet on (those fetched with it), in
    // offset order: the partition is held back until the first is due, at `due_at`.
    std::deque<message_ptr> due_held;
    std::chrono::steady_clock::time_point due_at{};
};

class router {
  public:
    /// `links`: one per shard, owned by the consumer (the router only pushes into them).
    router(std::string group, const std::vector<std::shared_ptr<shard_link>>& links)
        : group_(std::move(group)), links_(links) {}

    // ---- topics and routes
    /// The topic's id (a new one the first time it is named).
    std::uint32_t topic_id(const std::string& topic);
    /// The id of a fetched message's topic (cached by its handle, which belongs to one client).
    std::uint32_t topic_of(const rd_kafka_topic_t* handle);
    /// Forgets the handle cache (its client is being replaced).
    void forget_handles() { topic_by_handle_.clear(); }
    /// The id of a topic already known, or nullptr.
    const std::uint32_t* find_topic(const std::string& topic) const;
    const std::string& topic_name(std::uint32_t topic) const { return topics_[topic]; }
    std::size_t topic_count() const noexcept { return topics_.size(); }
    const std::vector<route_entry>& route(std::uint32_t topic) const { return routes_[topic]; }
    /// Routes the trigger's topic to it, or every known topic its pattern matches (and every
    /// one named later), and its retry topics; returns the ids of the topics routed to it now.
    std::vector<std::uint32_t> add(std::shared_ptr<trigger_state> trigger);
    /// Marks the trigger's route entries detaching (a pattern routes no new topic to it either);
    /// false when it is not routed or already detaching.
    bool start_detaching(const std::shared_ptr<trigger_state>& trigger);
    /// Removes the trigger from `topic`'s route; false if it was not there.
    bool remove(std::uint32_t topic, std::uint32_t trigger);
    /// Forgets a detached trigger's pattern.
    void remove_pattern(std::uint32_t trigger);
    /// What some trigger still wants (not detaching), sorted: the subscription. Named topics,
    /// and patterns rather than the topics they matched.
    std::vector<std::string> wanted_topics() const;
    /// The topics with any route.
    std::vector<std::string> routed_topics() const;
    /// Every routed trigger, for each(trigger_state&).
    template <typename F>
    void for_each_trigger(F&& each) const {
        for (const auto& route : routes_)
            for (const auto& entry : route) each(entry.trigger);
    }
    /// Forgets every route and pattern: they hold their triggers, which hold the consumer (a
    /// pattern kept at close leaked the consumer and its unjoined poll thread; TSan's thread-leak
    /// report and LeakSanitizer on topic_pattern_test are the check).
    void clear_routes() {
        routes_.clear();
        patterns_.clear();
        fanouts_.clear();
    }

    // ---- assigned partitions
    std::map<partition_id, partition_state>& partitions() noexcept { return partitions_; }
    const std::map<partition_id, partition_state>& partitions() const noexcept {
        return partitions_;
    }
    partition_state* find_partition(const partition_id& id);
    std::vector<partition_id> partitions_of(std::uint32_t topic) const;
    /// Some partition is held back for its backlog or completion map (not for a due time).
    bool any_paused() const;
    /// The earliest due time of a held retry record, if any.
    std::optional<std::chrono::steady_clock::time_point> next_due() const;
    /// Dispatches the held retry records that are due by `now` and resumes their partitions
    /// (unless a backlog still holds them back).
    void release_due(std::chrono::steady_clock::time_point now, message_records& records);
    /// Each assigned partition as each trigger on it sees it (for metrics), with `acknowledged`
    /// commits and the client's cached high watermarks.
    std::vector<std::pair<std::uint32_t, partition_metrics>> partition_view(
        const committed_offsets& acknowledged, const kafka_client& client) const;

    struct delivery_stall {
        std::chrono::nanoseconds longest{0};
        std::string partition;  // "topic[partition]", empty when none waits
    };
    /// The partition that has waited longest with messages beyond those fetched (by the client's
    /// cached high watermarks) and none fetched; partitions of a user-paused trigger, or with
    /// nothing to deliver, start waiting again from `now`.
    delivery_stall longest_stall(std::chrono::steady_clock::time_point now,
                                 const committed_offsets& acknowledged, const kafka_client& client);

    // ---- the hot path
    /// Hands `raw` to every trigger on its topic that is not detaching and did not finish it
    /// before (the committed completion map), through the partition's shard link; holds the
    /// partition back once a trigger's backlog passes its max_backlog or its completion map no
    /// longer fits in a commit. A retry topic's record goes only to the trigger it names, and
    /// one not due yet is held with its partition until it is. Destroys `raw` when no trigger
    /// receives it.
    void dispatch(rd_kafka_message_t* raw, const partition_id& id, partition_state& state,
                  message_records& records);
    /// Handlers finished: marks them in the ledger (unless fenced) and resumes the partition
    /// once every trigger's backlog is down to half its max_backlog; returns how many finished.
    std::size_t completed(const completion& c, bool stopping);
    /// Resumes `id` if it is held back, every trigger's backlog allows it and its completion map
    /// fits in a commit.
    void maybe_resume(const partition_id& id, partition_state& state, bool stopping);
    /// maybe_resume() for every held-back partition (after a commit, whose maps may fit again).
    void resume_ready(bool stopping);
    void set_paused(const partition_id& id, partition_state& state, bool paused);

  private:
    /// Holds `raw` behind the partition's held retry records, or as the first one when it is
    /// not due yet (and holds the partition back); false when it may be dispatched now.
    bool hold_until_due(rd_kafka_message_t* raw, const std::optional<retry_stamp>& stamp,
                        const partition_id& id, partition_state& state);
    /// dispatch() once it is not held.
    void deliver(rd_kafka_message_t* raw, const std::optional<retry_stamp>& stamp,
                 const partition_id& id, partition_state& state, message_records& records);
    /// Rebuilds `topic`'s fanout list after its route changed.
    void refresh_fanout(std::uint32_t topic);

    const std::string group_;
    const std::vector<std::shared_ptr<shard_link>>& links_;
    std::vector<std::string> topics_;
    std::unordered_map<std::string, std::uint32_t> topic_ids_;
    std::unordered_map<const rd_kafka_topic_t*, std::uint32_t> topic_by_handle_;
    std::vector<std::vector<route_entry>> routes_;  // by topic id
    std::vector<route_entry> patterns_;             // triggers on a topic pattern
    std::vector<bool> retry_topic_;                 // by topic id: some trigger's retry tier
    std::vector<fanout_owner> fanouts_;  // by topic id: its route, while no entry detaches
    std::map<partition_id, partition_state> partitions_;
    std::vector<bool> skipping_;  // dispatch()'s scratch
};

}  // namespace kt::detail
