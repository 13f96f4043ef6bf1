// Assignments, revocations and losses, in the order the rebalance callback needs them.
#include "rebalance.hpp"

#include <algorithm>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"
#include "shard/shard_map.hpp"
#include "shard/trigger_state.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace kt::detail {

void rebalance::on_event(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                         bool stopping) {
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(partitions);  // takes the partition queues before fetching starts
        p_.client.assign(partitions);
        if (stopping) p_.client.pause(partitions);
        log(log_level::info, "group '{}': assigned {} partition(s)", group_, partitions->cnt);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        const bool lost = p_.client.assignment_lost();
        revoke(partitions, lost, stopping);
        p_.client.unassign(partitions);
        if (lost)
            log(log_level::info, "group '{}': lost {} partition(s)", group_, partitions->cnt);
        else
            log(last_revoke_commit_ ? log_level::warning : log_level::info,
                "group '{}': revoked {} partition(s); drained and {} in {} ms", group_,
                partitions->cnt,
                last_revoke_commit_
                    ? fmt::format("the commit refused ({}): the next owner repeats their "
                                  "uncommitted work",
                                  rd_kafka_err2str(last_revoke_commit_))
                    : std::string("committed"),
                last_revoke_ms_);
    } else {
        log(log_level::error, "group '{}': rebalance error: {}", group_, rd_kafka_err2str(err));
        p_.client.clear_assignment();
        p_.routes.partitions().clear();
        p_.ledger.clear();
        p_.hold.reset();
    }
}

void rebalance::lose_all(bool stopping) {
    const auto& partitions = p_.routes.partitions();
    if (partitions.empty()) return;
    partition_list_ptr all(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (const auto& [id, state] : partitions)
        rd_kafka_topic_partition_list_add(all.get(), p_.routes.topic_name(id.first).c_str(),
                                          id.second);
    revoke(all.get(), true, stopping);
}

void rebalance::revoke_reported(const partition_id& id) {
    if (auto it = revokes_pending_.find(id); it != revokes_pending_.end() && it->second > 0)
        --it->second;
}

std::vector<partition_id> rebalance::ids_of(const rd_kafka_topic_partition_list_t* partitions) {
    std::vector<partition_id> ids;
    for (int i = 0; i < partitions->cnt; ++i)
        ids.emplace_back(p_.routes.topic_id(partitions->elems[i].topic),
                         partitions->elems[i].partition);
    return ids;
}

void rebalance::assign(rd_kafka_topic_partition_list_t* partitions) {
    const auto committed = read_committed(partitions);
    resume_lost_positions(partitions, committed.get());
    for (int i = 0; i < partitions->cnt; ++i) {
        const auto& p = partitions->elems[i];
        const partition_id id{p_.routes.topic_id(p.topic), p.partition};
        partition_state state;
        state.shard = shard_of(p.topic, p.partition, static_cast<unsigned>(p_.links.size()));
        std::vector<ledger_trigger> triggers;
        for (const auto& entry : p_.routes.route(id.first))
            triggers.push_back(ledger_trigger_of(*entry.trigger));
        const auto restored = restored_map(committed.get(), p.topic, p.partition);
        // Resumed after a loss (p.offset set): that position is complete, so it is committable.
        state.ledger = &p_.ledger.assign(id, ++next_generation_, triggers,
                                         std::max<std::int64_t>(p.offset, -1),
                                         restored ? &*restored : nullptr);
        state.queue = p_.client.take_partition_queue(p.topic, p.partition);
        p_.routes.partitions()[id] = std::move(state);
    }
    notify_listeners(event::assigned, ids_of(partitions));
}

partition_list_ptr rebalance::read_committed(const rd_kafka_topic_partition_list_t* partitions) {
    // For the completion maps; a lost partition coming back needs the commit too.
    if (!p_.ledger.completion_maps() && lost_positions_.empty()) return nullptr;
    partition_list_ptr committed(rd_kafka_topic_partition_list_copy(partitions));
    // Bounded like the rest of the rebalance's waits: the assignment goes on without the maps.
    const auto timeout = std::min<std::chrono::milliseconds>(5s, options_.revoke_drain_timeout);
    // Except under exactly_once, where running again what a committed transaction's map says it
    // finished outputs it twice. A transaction still open on the group's offsets (its producer
    // killed after sending them) makes the read answer UNSTABLE_OFFSET_COMMIT until the
    // transaction ends: aborted by the coordinator after transaction.timeout.ms (60 s by default),
    // or at once when our own producer of that transactional.id starts (trigger_state::bind).
    const bool must_read = p_.ledger.delivery() == delivery_guarantee::exactly_once;
    const auto deadline = steady::now() + (must_read ? exactly_once_read_timeout : 0s);
    for (int attempt = 1;; ++attempt) {
        const auto err = p_.client.read_committed(committed.get(), timeout);
        if (!err) {
            if (attempt > 1)
                log(log_level::info, "group '{}': committed offsets read after {} attempts", group_,
                    attempt);
            return committed;
        }
        if (steady::now() >= deadline) {
            log(must_read ? log_level::error : log_level::warning,
                "group '{}': reading the committed offsets of {} assigned partition(s) failed "
                "({}): their triggers redo everything above the committed offset{}",
                group_, partitions->cnt, rd_kafka_err2str(err),
                must_read ? " (under exactly_once, what committed transactions finished above it "
                            "is output again)"
                          : "");
            return nullptr;
        }
        if (attempt == 1)
            log(log_level::warning,
                "group '{}': the committed offsets of {} assigned partition(s) are not readable "
                "yet ({}); exactly_once waits for them (a transaction may still be open on "
                "them) up to {} s",
                group_, partitions->cnt, rd_kafka_err2str(err),
                std::chrono::duration_cast<std::chrono::seconds>(exactly_once_read_timeout)
                    .count());
        std::this_thread::sleep_for(200ms);  // an error may come back at once
    }
}

std::optional<completion_map> rebalance::restored_map(
    const rd_kafka_topic_partition_list_t* committed, const char* topic, std::int32_t partition) {
    if (!committed || !p_.ledger.completion_maps()) return {};
    const auto* p = rd_kafka_topic_partition_list_find(committed, topic, partition);
    if (!p || p->err || p->offset < 0 || !p->metadata_size) return {};
    std::string why;
    auto map = decode({static_cast<const char*>(p->metadata), p->metadata_size}, p->offset, &why);
    if (!map) {
        log(log_level::info,
            "group '{}': {}[{}]: commit metadata ignored ({}); its triggers redo everything from "
            "offset {}",
            group_, topic, partition, why, p->offset);
        return {};
    }
    return map;
}

void rebalance::resume_lost_positions(rd_kafka_topic_partition_list_t* partitions,
                                      const rd_kafka_topic_partition_list_t* committed) {
    std::erase_if(lost_positions_, [](const auto& e) { return e.second.second < steady::now(); });
    // Another member may have committed further meanwhile: start at the later of the two.
    if (lost_positions_.empty() || !committed) return;
    for (int i = 0; i < partitions->cnt; ++i) {
        auto& p = partitions->elems[i];
        const partition_id id{p_.routes.topic_id(p.topic), p.partition};
        auto remembered = lost_positions_.find(id);
        if (remembered == lost_positions_.end()) continue;
        const auto* broker = rd_kafka_topic_partition_list_find(committed, p.topic, p.partition);
        p.offset = std::max(remembered->second.first, broker ? broker->offset : -1);
        lost_positions_.erase(remembered);
        log(log_level::info, "group '{}': {}[{}] came back after a loss; resuming at {}", group_,
            p.topic, p.partition, p.offset);
    }
}

void rebalance::revoke(const rd_kafka_topic_partition_list_t* partitions, bool lost,
                       bool stopping) {
    const auto ids = ids_of(partitions);
    // Stop routing: the runners drop what they queued for these partitions and report once no
    // handler of them runs any more.
    revokes_pending_.clear();
    for (const auto& id : ids) {
        const auto* part = p_.routes.find_partition(id);
        if (!part) continue;
        for (const auto& entry : p_.routes.route(id.first)) {
            p_.links[part->shard]->push({shard_item::kind::revoke, entry.trigger.get(), nullptr,
                                         id.second, part->ledger->generation(), id.first});
            ++revokes_pending_[id];
        }
    }
    flush_and_notify(p_.links);
    if (!lost) {
        // Drain-then-commit: in-flight handlers get up to revoke_drain_timeout, then they are
        // cancelled (never committed); what finished is committed, the rest goes to the next
        // owner (at-least-once) and late completions are fenced by the generation.
        const auto started = steady::now();
        const auto deadline = started + (stopping ? 0ms : options_.revoke_drain_timeout);
        while (!revokes_drained() && steady::now() < deadline) {
            p_.pump.pump_shards();
            if (!revokes_drained()) std::this_thread::sleep_for(1ms);
        }
        if (!revokes_drained()) {
            if (!stopping)  // a stop already drained up to drain_timeout
                log(log_level::warning,
                    "group '{}': cancelling handlers of revoked partitions still running after "
                    "{} ms",
                    group_, options_.revoke_drain_timeout.count());
            cancel_partition_handlers();
        }
        notify_listeners(event::revoked, ids);
        last_revoke_commit_ = p_.commits.commit_now(&ids);
        last_revoke_ms_ =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
    } else {
        // Lost: their results could not be committed any more, so running handlers stop now.
        cancel_partition_handlers();
        notify_listeners(event::lost, ids);
        // Nothing may be committed, but what we completed stays completed: if the partition comes
        // straight back to us (a fenced member rejoining, a session that timed out while the
        // group had no one else), it restarts there instead of at the older commit.
        for (const auto& id : ids)
            if (auto position = p_.ledger.committable(id))
                lost_positions_[id] = {*position, steady::now() + 30s};
    }
    revokes_pending_.clear();
    for (const auto& id : ids) {
        p_.routes.partitions().erase(id);
        p_.ledger.revoke(id);
        p_.hold.forget(id);
    }
}

void rebalance::cancel_partition_handlers() {
    for (const auto& [id, left] : revokes_pending_) {
        if (left == 0) continue;
        const auto* part = p_.routes.find_partition(id);
        if (!part) continue;
        for (const auto& entry : p_.routes.route(id.first))
            p_.links[part->shard]->push({shard_item::kind::cancel_partition, entry.trigger.get(),
                                         nullptr, id.second, 0, id.first});
    }
    flush_and_notify(p_.links);
}

bool rebalance::revokes_drained() const {
    return std::all_of(revokes_pending_.begin(), revokes_pending_.end(),
                       [](const auto& entry) { return entry.second == 0; });
}

void rebalance::notify_listeners(event what, const std::vector<partition_id>& ids) {
    auto running = std::make_shared<in_flight>();
    for (std::uint32_t topic = 0; topic < p_.routes.topic_count(); ++topic) {
        std::vector<std::int32_t> partitions;
        for (const auto& id : ids)
            if (id.first == topic) partitions.push_back(id.second);
        if (partitions.empty()) continue;
        for (const auto& entry : p_.routes.route(topic)) {
            const auto& listeners = entry.trigger->options.listeners;
            const auto& listener = what == event::assigned  ? listeners.on_assigned
                                   : what == event::revoked ? listeners.on_revoked
                                                            : listeners.on_lost;
            if (!listener) continue;
            running->enter();
            auto run = [listener, partitions, trigger = entry.trigger]() -> asio::awaitable<void> {
                try {
                    co_await listener(partitions);
                } catch (const std::exception& e) {
                    log(log_level::error, "trigger '{}': rebalance listener failed: {}",
                        trigger->options.name, e.what());
                }
            };
            asio::co_spawn(rt_.shard(0), std::move(run),
                           [running, wake = wake_](std::exception_ptr) {
                               running->leave();
                               if (auto w = wake.lock()) w->wake();
                           });
        }
    }
    auto wake = wake_.lock();
    if (!running->wait_idle(steady::now() + options_.revoke_drain_timeout,
                            [&] { wake->wait(1ms); }))
        log(log_level::warning, "group '{}': rebalance listeners still running after {} ms", group_,
            options_.revoke_drain_timeout.count());
}

}  // namespace kt::detail
