#include "consumer/commit_ledger.hpp"

#include <algorithm>

namespace kt::detail {

const offset_tracker* partition_ledger::tracker(std::uint32_t trigger, std::size_t hint) const {
    if (hint < trackers_.size() && trackers_[hint].first == trigger) return &trackers_[hint].second;
    for (const auto& [id, t] : trackers_)
        if (id == trigger) return &t;
    return nullptr;
}

std::size_t partition_ledger::delivered(std::uint32_t trigger, std::int64_t offset,
                                        std::size_t hint) {
    auto* t = tracker(trigger, hint);
    if (!t) return 0;
    t->delivered(offset);
    return t->backlog();
}

bool partition_ledger::completed(std::uint32_t generation, std::uint32_t trigger,
                                 std::int64_t offset) {
    if (generation != generation_) return false;
    auto* t = tracker(trigger);
    return t && t->completed(offset);
}

std::size_t partition_ledger::backlog(std::uint32_t trigger, std::size_t hint) const {
    const auto* t = tracker(trigger, hint);
    return t ? t->backlog() : 0;
}

bool partition_ledger::idle() const {
    return std::all_of(trackers_.begin(), trackers_.end(),
                       [](const auto& entry) { return entry.second.idle(); });
}

std::optional<std::int64_t> partition_ledger::committable(delivery_guarantee delivery) const {
    if (delivery == delivery_guarantee::at_most_once) {
        // Everything handed out is committed already; never commit past what was handed out.
        if (released_ < 0) return std::nullopt;
        return released_;
    }
    std::optional<std::int64_t> lowest;
    for (const auto& [id, t] : trackers_)
        if (auto offset = t.committable(); offset && (!lowest || *offset < *lowest))
            lowest = offset;
    return lowest;
}

partition_ledger& commit_ledger::assign(const partition_id& id, std::uint32_t generation,
                                        std::span<const std::uint32_t> triggers,
                                        std::int64_t start_at) {
    partition_ledger fresh;
    fresh.generation_ = generation;
    for (auto trigger : triggers) {
        offset_tracker t;
        if (start_at >= 0) t.start_at(start_at);
        fresh.trackers_.emplace_back(trigger, std::move(t));
    }
    if (start_at >= 0) fresh.released_ = start_at;
    return partitions_.insert_or_assign(id, std::move(fresh)).first->second;
}

void commit_ledger::add_trigger(std::uint32_t topic, std::uint32_t trigger) {
    for (auto& [id, p] : partitions_)
        if (id.first == topic && !p.tracker(trigger))
            p.trackers_.emplace_back(trigger, offset_tracker{});
}

void commit_ledger::remove_trigger(std::uint32_t topic, std::uint32_t trigger) {
    for (auto& [id, p] : partitions_)
        if (id.first == topic)
            std::erase_if(p.trackers_, [&](const auto& entry) { return entry.first == trigger; });
}

partition_ledger* commit_ledger::find(const partition_id& id) {
    auto it = partitions_.find(id);
    return it == partitions_.end() ? nullptr : &it->second;
}

std::optional<std::int64_t> commit_ledger::committable(const partition_id& id) const {
    auto it = partitions_.find(id);
    if (it == partitions_.end()) return std::nullopt;
    return it->second.committable(delivery_);
}

bool commit_ledger::idle(const std::vector<partition_id>* only) const {
    if (!only)
        return std::all_of(partitions_.begin(), partitions_.end(),
                           [](const auto& entry) { return entry.second.idle(); });
    return std::all_of(only->begin(), only->end(), [&](const partition_id& id) {
        auto it = partitions_.find(id);
        return it == partitions_.end() || it->second.idle();
    });
}

std::vector<commit_entry> commit_ledger::to_commit(const std::vector<partition_id>* only,
                                                   bool resend) const {
    std::vector<commit_entry> entries;
    auto add = [&](const partition_id& id, const partition_ledger& p) {
        auto offset = p.committable(delivery_);
        if (offset && (resend || *offset > p.sent_)) entries.push_back({id, *offset});
    };
    if (only) {
        for (const auto& id : *only)
            if (auto it = partitions_.find(id); it != partitions_.end()) add(it->first, it->second);
    } else {
        for (const auto& [id, p] : partitions_) add(id, p);
    }
    return entries;
}

void commit_ledger::sent(std::span<const commit_entry> entries) {
    for (const auto& e : entries)
        if (auto* p = find(e.partition)) p->sent_ = e.offset;
}

void commit_ledger::refused(std::span<const commit_entry> entries) {
    for (const auto& e : entries)
        if (auto* p = find(e.partition)) p->sent_ = -1;
}

void commit_ledger::refused_all() {
    for (auto& [id, p] : partitions_) p.sent_ = -1;
}

void commit_ledger::acknowledge(std::string_view topic, std::int32_t partition,
                                std::int64_t offset) {
    if (offset < 0) return;
    std::lock_guard lock(acknowledged_mutex_);
    auto& slot = acknowledged_[std::string(topic)][partition];
    slot = std::max(slot, offset);
}

committed_offsets commit_ledger::acknowledged() const {
    std::lock_guard lock(acknowledged_mutex_);
    return acknowledged_;
}

}  // namespace kt::detail
