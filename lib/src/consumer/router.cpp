// Routing: topic ids, routes, the partition table and the hand-off into the rings.
#include "router.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "consumer/topic_pattern.hpp"
#include "log.hpp"
#include "message_data.hpp"
#include "retry_topics.hpp"
#include "shard/trigger_state.hpp"

namespace kt::detail {

namespace {

/// Whether a trigger on a pattern takes `topic` (never its own dead letters).
bool pattern_takes(const trigger_state& trigger, const std::string& topic) {
    return trigger.pattern->matches(topic) && topic != trigger.dead_letter_topic;
}

}  // namespace

std::uint32_t router::topic_id(const std::string& topic) {
    auto [it, inserted] = topic_ids_.try_emplace(topic, static_cast<std::uint32_t>(topics_.size()));
    if (inserted) {
        topics_.push_back(topic);
        retry_topic_.push_back(false);
        auto& route = routes_.emplace_back();
        for (const auto& entry : patterns_)
            if (!entry.detaching && pattern_takes(*entry.trigger, topic)) route.push_back(entry);
        refresh_fanout(it->second);
    }
    return it->second;
}

std::uint32_t router::topic_of(const rd_kafka_topic_t* handle) {
    if (auto it = topic_by_handle_.find(handle); it != topic_by_handle_.end()) return it->second;
    const auto topic = topic_id(rd_kafka_topic_name(handle));
    topic_by_handle_.emplace(handle, topic);
    return topic;
}

const std::uint32_t* router::find_topic(const std::string& topic) const {
    auto it = topic_ids_.find(topic);
    return it == topic_ids_.end() ? nullptr : &it->second;
}

std::vector<std::uint32_t> router::add(std::shared_ptr<trigger_state> trigger) {
    std::vector<std::uint32_t> routed;
    for (const auto& name : trigger->retry_topics) {
        const auto topic = topic_id(name);
        retry_topic_[topic] = true;
        routes_[topic].push_back({trigger});
        routed.push_back(topic);
    }
    if (!trigger->pattern) {
        const auto topic = topic_id(trigger->options.topic);
        routes_[topic].push_back({std::move(trigger)});
        routed.push_back(topic);
    } else {
        for (std::uint32_t topic = 0; topic < topics_.size(); ++topic)
            if (!retry_topic_[topic] && pattern_takes(*trigger, topics_[topic])) {
                routes_[topic].push_back({trigger});
                routed.push_back(topic);
            }
        patterns_.push_back({std::move(trigger)});
    }
    for (const auto topic : routed) refresh_fanout(topic);
    return routed;
}

void router::refresh_fanout(std::uint32_t topic) {
    if (fanouts_.size() < routes_.size()) fanouts_.resize(routes_.size());
    fanouts_[topic].reset();  // items in the rings still carry the old list
    const auto& route = routes_[topic];
    if (route.empty() ||
        std::any_of(route.begin(), route.end(), [](const route_entry& e) { return e.detaching; }))
        return;
    std::vector<trigger_state*> triggers;
    for (const auto& e : route) triggers.push_back(e.trigger.get());
    fanouts_[topic].reset(new fanout_list(std::move(triggers)));
}

bool router::start_detaching(const std::shared_ptr<trigger_state>& trigger) {
    bool found = false;
    auto mark = [&](route_entry& e) {
        if (e.trigger != trigger || e.detaching) return false;
        e.detaching = true;
        found = true;
        return true;
    };
    for (std::uint32_t topic = 0; topic < routes_.size(); ++topic) {
        bool marked = false;
        for (auto& e : routes_[topic]) marked |= mark(e);
        if (marked) refresh_fanout(topic);
    }
    std::for_each(patterns_.begin(), patterns_.end(), mark);
    return found;
}

bool router::remove(std::uint32_t topic, std::uint32_t trigger) {
    const bool removed = std::erase_if(routes_[topic], [&](const route_entry& e) {
                             return e.trigger->id == trigger;
                         }) > 0;
    if (removed) refresh_fanout(topic);
    return removed;
}

void router::remove_pattern(std::uint32_t trigger) {
    std::erase_if(patterns_, [&](const route_entry& e) { return e.trigger->id == trigger; });
}

std::vector<std::string> router::wanted_topics() const {
    std::vector<std::string> wanted;
    for (std::size_t i = 0; i < topics_.size(); ++i) {
        // A topic a pattern matched is the pattern's to subscribe; its retry topics are named.
        auto wanted_by = [&](const route_entry& e) {
            return !e.detaching && (!e.trigger->pattern || retry_topic_[i]);
        };
        if (std::any_of(routes_[i].begin(), routes_[i].end(), wanted_by))
            wanted.push_back(topics_[i]);
    }
    for (const auto& e : patterns_)
        if (!e.detaching) wanted.push_back(e.trigger->options.topic);
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    return wanted;
}

std::vector<std::string> router::routed_topics() const {
    std::vector<std::string> topics;
    for (std::size_t i = 0; i < topics_.size() && i < routes_.size(); ++i)
        if (!routes_[i].empty()) topics.push_back(topics_[i]);
    return topics;
}

partition_state* router::find_partition(const partition_id& id) {
    auto it = partitions_.find(id);
    return it == partitions_.end() ? nullptr : &it->second;
}

std::vector<partition_id> router::partitions_of(std::uint32_t topic) const {
    std::vector<partition_id> ids;
    for (const auto& [id, state] : partitions_)
        if (id.first == topic) ids.push_back(id);
    return ids;
}

bool router::any_paused() const {
    return std::any_of(partitions_.begin(), partitions_.end(),
                       [](const auto& p) { return p.second.paused && p.second.due_held.empty(); });
}

std::optional<std::chrono::steady_clock::time_point> router::next_due() const {
    std::optional<std::chrono::steady_clock::time_point> next;
    for (const auto& [id, state] : partitions_)
        if (!state.due_held.empty() && (!next || state.due_at < *next)) next = state.due_at;
    return next;
}

void router::release_due(std::chrono::steady_clock::time_point now, message_records& records) {
    for (auto& [id, state] : partitions_) {
        if (state.due_held.empty() || state.due_at > now) continue;
        auto held = std::move(state.due_held);
        state.due_held.clear();
        set_paused(id, state, false);
        for (auto& m : held) dispatch(m.release(), id, state, records);  // holds those not due yet
        maybe_resume(id, state, false);
    }
}

namespace {

std::int64_t committed_of(const committed_offsets& acknowledged, const std::string& topic,
                          std::int32_t partition) {
    if (auto t = acknowledged.find(topic); t != acknowledged.end())
        if (auto c = t->second.find(partition); c != t->second.end()) return c->second;
    return -1;
}

}  // namespace

std::vector<std::pair<std::uint32_t, partition_metrics>> router::partition_view(
    const committed_offsets& acknowledged, const kafka_client& client) const {
    std::vector<std::pair<std::uint32_t, partition_metrics>> view;
    for (const auto& [id, state] : partitions_) {
        const auto& topic = topics_[id.first];
        partition_metrics p{.topic = topic,
                            .partition = id.second,
                            .paused = state.paused,
                            .committed = committed_of(acknowledged, topic, id.second),
                            .completion_map_bytes = state.ledger->map_bytes()};
        if (auto high = client.high_watermark(topic, id.second)) p.high_watermark = *high;
        if (p.high_watermark >= 0 && p.committed >= 0)
            p.lag = std::max<std::int64_t>(0, p.high_watermark - p.committed);
        const auto& route = routes_[id.first];
        for (std::size_t i = 0; i < route.size(); ++i) {
            p.backlog = state.ledger->backlog(route[i].trigger->id, i);
            view.emplace_back(route[i].trigger->id, p);
        }
    }
    return view;
}

router::delivery_stall router::longest_stall(std::chrono::steady_clock::time_point now,
                                             const committed_offsets& acknowledged,
                                             const kafka_client& client) {
    delivery_stall stall;
    for (auto& [id, state] : partitions_) {
        const auto& topic = topics_[id.first];
        const auto& route = routes_[id.first];
        // Held back by a user, or for a retry record's due time: not a stall.
        const bool user_paused = !state.due_held.empty() ||
                                 std::any_of(route.begin(), route.end(), [](const auto& entry) {
                                     return entry.trigger->paused.load(std::memory_order_relaxed);
                                 });
        const auto next = state.next_offset >= 0 ? state.next_offset
                                                 : committed_of(acknowledged, topic, id.second);
        const auto high = client.high_watermark(topic, id.second);
        const bool waiting = !user_paused && next >= 0 && high && *high > next;
        if (!waiting || state.waiting_since == std::chrono::steady_clock::time_point{})
            state.waiting_since = now;
        if (now - state.waiting_since > stall.longest) {
            stall.longest = now - state.waiting_since;
            stall.partition = fmt::format("{}[{}]", topic, id.second);
        }
    }
    return stall;
}

ledger_trigger ledger_trigger_of(const trigger_state& trigger) {
    return {trigger.id, trigger_key(trigger.options.name)};
}

void router::dispatch(rd_kafka_message_t* raw, const partition_id& id, partition_state& state,
                      message_records& records) {
    std::optional<retry_stamp> stamp;
    if (retry_topic_[id.first]) {
        stamp = read_retry_stamp(raw);
        if (hold_until_due(raw, stamp, id, state)) return;
    }
    deliver(raw, stamp, id, state, records);
}

bool router::hold_until_due(rd_kafka_message_t* raw, const std::optional<retry_stamp>& stamp,
                            const partition_id& id, partition_state& state) {
    if (state.due_held.empty()) {
        const auto wait = stamp ? stamp->due - std::chrono::system_clock::now()
                                : std::chrono::system_clock::duration::zero();
        if (wait <= std::chrono::system_clock::duration::zero()) return false;
        // Its queue is not drained meanwhile: the records behind it are due later still.
        state.due_at = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait);
        set_paused(id, state, true);
    }
    state.due_held.emplace_back(raw);
    return true;
}

void router::deliver(rd_kafka_message_t* raw, const std::optional<retry_stamp>& stamp,
                     const partition_id& id, partition_state& state, message_records& records) {
    const auto& route = routes_[id.first];
    auto& ledger = *state.ledger;
    const bool restoring = ledger.restoring();
    if (auto* all = fanouts_[id.first].get(); all && route.size() > 1 && !restoring && !stamp) {
        // Every trigger receives it: one item for the shard to hand to each (one trigger takes
        // the plain item, without the list's reference count going back and forth).
        ledger.released(raw->offset + 1);
        auto* data = records.make(raw, static_cast<std::uint32_t>(route.size()), id.first,
                                  ledger.generation());
        for (std::size_t i = 0; i < route.size(); ++i) {
            const auto backlog = ledger.delivered(route[i].trigger->id, raw->offset, i);
            if (!state.paused && backlog > route[i].trigger->options.max_backlog)
                set_paused(id, state, true);
        }
        links_[state.shard]->push(
            {shard_item::kind::deliver_all, nullptr, data, 0, 0, 0, all->share()});
        if (!state.paused && ledger.map_full()) set_paused(id, state, true);
        return;
    }
    // After a restart, the committed completion map says what some triggers finished already:
    // skipping_[i] when route[i] skips this one.
    if (restoring) {
        skipping_.assign(route.size(), false);
        for (std::size_t i = 0; i < route.size(); ++i)
            skipping_[i] =
                !route[i].detaching && ledger.skips(route[i].trigger->id, raw->offset, i);
    }
    auto receives = [&](std::size_t i) {
        return !route[i].detaching && !(restoring && skipping_[i]) &&
               (!stamp || stamp->trigger == route[i].trigger->options.name);
    };
    std::uint32_t receivers = 0;
    for (std::size_t i = 0; i < route.size(); ++i) receivers += receives(i);
    if (receivers == 0) {
        rd_kafka_message_destroy(raw);
        return;
    }
    ledger.released(raw->offset + 1);
    auto* data = records.make(raw, receivers, id.first, ledger.generation());
    for (std::size_t i = 0; i < route.size(); ++i) {
        if (!receives(i)) continue;
        const auto& entry = route[i];
        const auto backlog = ledger.delivered(entry.trigger->id, raw->offset, i);
        links_[state.shard]->push({shard_item::kind::deliver, entry.trigger.get(), data});
        if (!state.paused && backlog > entry.trigger->options.max_backlog)
            set_paused(id, state, true);
    }
    if (!state.paused && ledger.map_full()) set_paused(id, state, true);
}

std::size_t router::completed(const completion& c, bool stopping) {
    auto part = partitions_.find({c.topic_id, c.partition});
    if (part == partitions_.end()) return 0;  // revoked: fenced
    const auto finished =
        part->second.ledger->completed(c.generation, c.trigger_id, c.first, c.offset);
    if (finished > 0 && part->second.paused) maybe_resume(part->first, part->second, stopping);
    return finished;
}

void router::maybe_resume(const partition_id& id, partition_state& state, bool stopping) {
    if (!state.paused || stopping || !state.due_held.empty() || state.ledger->map_full()) return;
    const auto& route = routes_[id.first];
    for (std::size_t i = 0; i < route.size(); ++i)
        if (state.ledger->backlog(route[i].trigger->id, i) >
            route[i].trigger->options.max_backlog / 2)
            return;
    set_paused(id, state, false);
}

void router::resume_ready(bool stopping) {
    for (auto& [id, state] : partitions_)
        if (state.paused) maybe_resume(id, state, stopping);
}

void router::set_paused(const partition_id& id, partition_state& state, bool paused) {
    if (state.paused == paused) return;
    state.paused = paused;
    log(log_level::debug, "group '{}': {} {}[{}]", group_, paused ? "holding back" : "resumed",
        topics_[id.first], id.second);
}

}  // namespace kt::detail
