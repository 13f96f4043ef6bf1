#include "consumer/commit_ledger.hpp"

#include <algorithm>

namespace kt::detail {

const partition_ledger::trigger_entry* partition_ledger::entry(std::uint32_t trigger,
                                                               std::size_t hint) const {
    if (hint < triggers_.size() && triggers_[hint].trigger.id == trigger) return &triggers_[hint];
    for (const auto& e : triggers_)
        if (e.trigger.id == trigger) return &e;
    return nullptr;
}

bool partition_ledger::skips(std::uint32_t trigger, std::int64_t offset, std::size_t hint) {
    auto* e = entry(trigger, hint);
    if (!e || e->skip_at == e->skip.size()) return false;
    while (e->skip_at < e->skip.size() && e->skip[e->skip_at].end <= offset) ++e->skip_at;
    const bool skip = e->skip_at < e->skip.size() && e->skip[e->skip_at].begin <= offset;
    if (skip) e->tracker.skipped(offset);
    if (e->skip_at == e->skip.size() || (skip && offset + 1 == e->skip.back().end)) {
        e->skip_at = e->skip.size();
        --restoring_;
    }
    return skip;
}

std::size_t partition_ledger::delivered(std::uint32_t trigger, std::int64_t offset,
                                        std::size_t hint) {
    auto* e = entry(trigger, hint);
    if (!e) return 0;
    e->tracker.delivered(offset);
    return e->tracker.backlog();
}

std::size_t partition_ledger::completed(std::uint32_t generation, std::uint32_t trigger,
                                        std::int64_t first, std::int64_t last) {
    if (generation != generation_) return 0;
    const auto next = last_completing_ + 1;
    auto* e = next < triggers_.size() && triggers_[next].trigger.id == trigger
                  ? &triggers_[next]
                  : entry(trigger, last_completing_);
    if (!e) return 0;
    last_completing_ = static_cast<std::size_t>(e - triggers_.data());
    const auto finished = e->tracker.completed(first, last);
    completions_ += finished;
    return finished;
}

std::size_t partition_ledger::backlog(std::uint32_t trigger, std::size_t hint) const {
    const auto* e = entry(trigger, hint);
    return e ? e->tracker.backlog() : 0;
}

bool partition_ledger::idle() const {
    return std::all_of(triggers_.begin(), triggers_.end(),
                       [](const trigger_entry& e) { return e.tracker.idle(); });
}

std::optional<std::int64_t> partition_ledger::committable(delivery_guarantee delivery) const {
    if (delivery == delivery_guarantee::at_most_once) {
        // Everything handed out is committed already; never commit past what was handed out.
        if (released_ < 0) return std::nullopt;
        return released_;
    }
    std::optional<std::int64_t> lowest;
    for (const auto& e : triggers_)
        if (auto offset = e.tracker.committable(); offset && (!lowest || *offset < *lowest))
            lowest = offset;
    return lowest;
}

completion_map partition_ledger::finished_above(std::int64_t base) const {
    completion_map map{base, {}};
    for (const auto& e : triggers_) {
        auto finished = e.tracker.finished_above(base);
        // Not reached yet: still finished. The range being read may start below `base`.
        offset_ranges pending;
        for (auto i = e.skip_at; i < e.skip.size(); ++i)
            if (e.skip[i].end > base)
                pending.push_back({std::max(e.skip[i].begin, base), e.skip[i].end});
        if (!pending.empty()) finished = unite(finished, pending);
        map.sections.emplace_back(e.trigger.key, std::move(finished));
    }
    return map;
}

partition_ledger& commit_ledger::assign(const partition_id& id, std::uint32_t generation,
                                        std::span<const ledger_trigger> triggers,
                                        std::int64_t start_at, const completion_map* restored) {
    partition_ledger fresh;
    fresh.generation_ = generation;
    for (const auto& trigger : triggers) {
        partition_ledger::trigger_entry e{trigger, {}, {}, 0};
        if (start_at >= 0) e.tracker.start_at(start_at);
        if (const auto* finished = restored ? restored->find(trigger.key) : nullptr;
            finished && !finished->empty()) {
            e.skip = *finished;
            ++fresh.restoring_;
        }
        fresh.triggers_.push_back(std::move(e));
    }
    if (start_at >= 0) fresh.released_ = start_at;
    return partitions_.insert_or_assign(id, std::move(fresh)).first->second;
}

void commit_ledger::add_trigger(std::uint32_t topic, ledger_trigger trigger) {
    for (auto& [id, p] : partitions_)
        if (id.first == topic && !p.entry(trigger.id)) p.triggers_.push_back({trigger, {}, {}, 0});
}

void commit_ledger::remove_trigger(std::uint32_t topic, std::uint32_t trigger) {
    for (auto& [id, p] : partitions_) {
        if (id.first != topic) continue;
        if (auto* e = p.entry(trigger); e && e->skip_at < e->skip.size()) --p.restoring_;
        std::erase_if(p.triggers_, [&](const auto& e) { return e.trigger.id == trigger; });
    }
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
                                                   bool resend) {
    std::vector<commit_entry> entries;
    auto add = [&](const partition_id& id, partition_ledger& p) {
        auto offset = p.committable(delivery_);
        if (!offset || !(resend || *offset > p.sent_ || p.completions_ != p.sent_completions_))
            return;
        commit_entry e{id, *offset};
        if (maps_) {
            auto map = encode(p.finished_above(*offset), map_budget_);
            e.metadata = std::move(map.text);
            p.map_full_ = !map.complete;
            p.map_bytes_ = e.metadata.size();
        }
        entries.push_back(std::move(e));
    };
    if (only) {
        for (const auto& id : *only)
            if (auto it = partitions_.find(id); it != partitions_.end()) add(it->first, it->second);
    } else {
        for (auto& [id, p] : partitions_) add(id, p);
    }
    return entries;
}

void commit_ledger::sent(std::span<const commit_entry> entries) {
    for (const auto& e : entries)
        if (auto* p = find(e.partition)) {
            p->sent_ = e.offset;
            p->sent_completions_ = p->completions_;
        }
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

std::size_t commit_ledger::map_budget_for(std::int64_t limit) noexcept {
    return static_cast<std::size_t>(std::clamp<std::int64_t>(limit / 4 * 3, 0, 32 * 1024));
}

}  // namespace kt::detail
