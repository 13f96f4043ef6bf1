// Per-shard trigger runner: lanes, ordering, max_in_flight, batches, revoke, fences and
// cancellation; its workers run the handler calls. Shard thread.
#include "shard/trigger_runner.hpp"

#include <algorithm>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "consumer/shared_consumer.hpp"
#include "log.hpp"
#include "shard/transaction_cycle.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace kt::detail {
namespace {

/// Work between two yields of a continuing coroutine, so one busy trigger does not hold its
/// shard for long.
constexpr unsigned continuation_batch = 64;

/// A worker: runs `work`, then whatever ready work the runner hands over when it finishes, then
/// parks until start() gives it more. A coroutine per worker instead of one per message: waking a
/// parked worker is one post, against a frame, a work guard, a cancellation handler and two posts.
asio::awaitable<void> run_worker(std::optional<shard_keepalive> keep,
                                 std::shared_ptr<worker_pool::worker> self, trigger_runner* runner,
                                 std::uint32_t slot, work_items work) {
    auto& calls = runner->calls();
    for (unsigned ran = 1;; ++ran) {
        // Most calls succeed at once: their first attempt is made here, without run()'s frame.
        auto result = call_outcome::handled;
        if (calls.direct()) {
            std::exception_ptr failed;
            try {
                co_await calls.first_attempt(work);
            } catch (...) {
                failed = std::current_exception();
            }
            // Asked before co_await run(): once cancelled, asio throws at that co_await itself, and
            // the work would end without its report.
            if (failed && cancelled(co_await asio::this_coro::cancellation_state))
                result = call_outcome::cancelled;
            else if (failed)
                result = co_await calls.run(work, std::move(failed));
        } else {
            result = co_await calls.run(work);
        }
        // The next work replaces `work` in place, once finish() is done with it.
        if (!runner->finish(work, result, trigger_runner::continuation{slot, &work})) {
            if (!runner->may_park()) {
                runner->workers().exits(slot);
                co_return;
            }
            work.clear();  // a parked worker pins no message (a stop waits for every one)
            // Cancelled work leaves the coroutine cancelled, and its next co_await would throw.
            if (cancelled(co_await asio::this_coro::cancellation_state))
                co_await asio::this_coro::reset_cancellation_state();
            if (!co_await runner->workers().park(slot, keep)) co_return;  // the runner may be gone
            work = std::move(self->handoff);
            self->handoff.clear();
        }
        // A handler may have finished normally despite a cancellation: the next work (perhaps of
        // another partition) starts uncancelled.
        if (cancelled(co_await asio::this_coro::cancellation_state))
            co_await asio::this_coro::reset_cancellation_state();
        if (ran % continuation_batch == 0) {
            try {
                co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            } catch (const boost::system::system_error&) {
                // Cancelled while yielding: the handler sees it at its first suspension.
            }
        }
    }
}

/// exactly_once: one attempt of `work` inside the open transaction, reported to the runner.
asio::awaitable<void> run_in_transaction([[maybe_unused]] std::shared_ptr<trigger_state> trigger,
                                         trigger_runner* runner, work_items work) {
    using outcome = trigger_runner::outcome;
    auto& txn = *runner->transaction();
    transaction_attempt attempt{outcome::cancelled, nullptr};
    try {
        attempt = co_await runner->calls().run_in_transaction(
            work, txn.producer(), txn.to_dead_letter(work.front()), txn.attempt_of(work.front()));
    } catch (const boost::system::system_error&) {
        // Cancelled before the attempt began: asio throws at the co_await itself.
    }
    if (attempt.result == outcome::cancelled) {
        (void)runner->finish(work, outcome::cancelled);
        co_return;
    }
    runner->finish_in_transaction(work, attempt.error, attempt.result);
}

}  // namespace

trigger_runner::trigger_runner(trigger_state& owner, unsigned shard_index,
                               asio::any_io_executor shard, shard_link& link)
    : owner_(owner),
      shard_index_(shard_index),
      shard_(std::move(shard)),
      link_(link),
      calls_(owner, owner.id * 7919u + shard_index + 1, metrics_, *this),
      reports_in_order_(!owner.inbox &&
                        owner.options.delivery != delivery_guarantee::exactly_once &&
                        (owner.is_batch() || owner.options.ordering == ordering::partition)),
      runs_(link, owner.id),
      pool_(owner, shard_) {
    if (owner.options.delivery == delivery_guarantee::exactly_once)
        txn_ = std::make_unique<transaction_cycle>(*this);
}

trigger_runner::~trigger_runner() = default;

void trigger_runner::open_transaction_early() {
    if (!txn_) return;
    asio::post(shard_, [weak = owner_.weak_from_this(), this] {
        if (weak.lock()) txn_->want();  // an empty transaction commits after transaction_interval
    });
}

std::uint64_t trigger_runner::lane_of(const message& m) const {
    // Partition lanes are the partition keys themselves; key and message lanes hash (two lanes
    // that collide run one after the other, which orders more, never less).
    const auto partition = key_of_partition(m);
    if (owner_.is_batch()) return partition;
    switch (owner_.options.ordering) {
        case ordering::partition:
            return partition;
        case ordering::key:
            return fnv1a(owner_.options.key_of ? extracted_key(m) : m.key()) * 31 + partition;
        case ordering::none:
            break;
    }
    return (partition * 0x9E3779B97F4A7C15ull) ^ static_cast<std::uint64_t>(m.offset());
}

std::string trigger_runner::extracted_key(const message& m) const {
    try {
        return owner_.options.key_of(m);
    } catch (const std::exception& e) {
        if (!owner_.key_of_failure_logged.exchange(true, std::memory_order_relaxed))
            log(log_level::error,
                "trigger '{}': key_of failed for {}[{}]@{} ({}); such messages are ordered as "
                "messages without a key (logged once)",
                owner_.options.name, m.topic(), m.partition(), m.offset(), e.what());
        return {};
    }
}

void trigger_runner::deliver(message m) {
    if (closing_ || cancelled_) return;  // dropped: the trigger is leaving or the stop timed out
    const auto id = lane_of(m);
    auto& l = lane_at(id);
    if (owner_.is_batch() && l.pending.empty()) l.oldest_since = std::chrono::steady_clock::now();
    l.pending.push_back(std::move(m));
    enqueue_ready(id, l);
    if (!ready_.empty()) pump();
}

trigger_runner::lane& trigger_runner::lane_at(std::uint64_t id) {
    // Messages come in runs of one partition (a fetch at a time): mostly the last lane again.
    if (cached_lane_.l && cached_lane_.id == id) return *cached_lane_.l;
    auto& l = lanes_[id];
    cached_lane_ = {id, &l};
    return l;
}

bool trigger_runner::batch_due(std::uint64_t lane_id, lane& l) {
    const auto& batching = owner_.code.batching;
    const auto due_at = l.oldest_since + batching.max_wait;
    if (l.pending.size() >= std::max<std::size_t>(1, batching.max_messages) ||
        std::chrono::steady_clock::now() >= due_at)
        return true;
    if (!l.batch_timer_armed) {
        if (!l.batch_timer) l.batch_timer = std::make_unique<asio::steady_timer>(shard_);
        l.batch_timer_armed = true;
        l.batch_timer->expires_at(due_at);
        l.batch_timer->async_wait(
            [keep = owner_.shared_from_this(), this, lane_id](boost::system::error_code ec) {
                if (ec || cancelled_) return;
                auto it = lanes_.find(lane_id);
                if (it == lanes_.end()) return;
                it->second.batch_timer_armed = false;
                enqueue_ready(lane_id, it->second);
                pump();
            });
    }
    return false;
}

void trigger_runner::enqueue_ready(std::uint64_t lane_id, lane& l) {
    if (l.busy || l.ready || l.pending.empty()) return;
    if (owner_.is_batch() && !batch_due(lane_id, l)) return;
    l.ready = true;
    ready_.push_back(lane_id);
}

work_items trigger_runner::take_work(lane& l) {
    work_items work;
    take_work(l, work);
    return work;
}

void trigger_runner::take_work(lane& l, work_items& work) {
    work.clear();
    if (!owner_.is_batch()) {  // a lane with work: one message
        work.push_back(std::move(l.pending.front()));
        l.pending.pop_front();
        return;
    }
    const std::size_t count = std::max<std::size_t>(1, owner_.code.batching.max_messages);
    while (work.size() < count && !l.pending.empty()) {
        work.push_back(std::move(l.pending.front()));
        l.pending.pop_front();
    }
    if (!l.pending.empty()) l.oldest_since = std::chrono::steady_clock::now();
}

trigger_runner::lane* trigger_runner::take_ready_lane(std::uint64_t& id) {
    while (!ready_.empty()) {
        id = ready_.front();
        ready_.pop_front();
        auto it = lanes_.find(id);
        if (it == lanes_.end()) continue;
        auto& l = it->second;
        l.ready = false;
        if (!l.busy && !l.pending.empty()) return &l;
    }
    return nullptr;
}

void trigger_runner::pump() {
    if (owner_.paused.load(std::memory_order_relaxed)) return;
    if (txn_ && !txn_->admits()) {
        if (!ready_.empty()) txn_->want();
        return;
    }
    const unsigned limit = std::max(1u, owner_.options.max_in_flight);
    std::uint64_t id;
    while (running_ < limit && (!txn_ || txn_->admits())) {
        auto* l = take_ready_lane(id);
        if (!l) break;
        start({id, l}, take_work(*l));
        if (txn_) txn_->started();
    }
}

bool trigger_runner::claim_next(const continuation& into, clock::time_point now) {
    if (owner_.paused.load(std::memory_order_relaxed) || txn_ ||
        running_ >= std::max(1u, owner_.options.max_in_flight))
        return false;
    std::uint64_t id;
    auto* l = take_ready_lane(id);
    if (!l) return false;
    take_work(*l, *into.next);
    const auto partition = key_of_partition(into.next->front());
    work_started(*l, partition, now);
    pool_.moved_to(into.slot, partition);
    worker_runs(into.slot, {id, l});
    return true;
}

bool trigger_runner::continues_in_lane(const lane& l) const {
    return ready_.empty() && !l.pending.empty() && !owner_.is_batch() && !txn_ && !closing_ &&
           !owner_.paused.load(std::memory_order_relaxed) &&
           running_ < std::max(1u, owner_.options.max_in_flight);
}

void trigger_runner::worker_runs(std::uint32_t slot, lane_ref ref) {
    if (slot >= worker_lanes_.size()) worker_lanes_.resize(slot + 1, {0, nullptr});
    worker_lanes_[slot] = ref;
}

void trigger_runner::start(lane_ref ref, work_items work) {
    auto& l = *ref.l;
    const auto partition = key_of_partition(work.front());
    work_started(l, partition, clock::now());
    if (owner_.inbox) {
        // Pull-style: the subscriber calls complete(), which comes back as complete_pulled().
        asio::post(
            owner_.inbox->executor, [inbox = owner_.inbox, m = std::move(work.front())]() mutable {
                if (!inbox->channel.try_send(boost::system::error_code{}, std::move(m)))
                    log(log_level::error, "subscription inbox full or closed; message dropped");
            });
        return;
    }
    if (const auto woken = pool_.hand_to_parked(partition, work)) {
        worker_runs(*woken, ref);
        return;
    }
    const auto slot = pool_.add(partition);
    worker_runs(slot, ref);
    auto w = pool_.at(slot);
    // Neither completion handler touches the runner: it may be gone when they run.
    auto ended = [name = owner_.options.name](std::exception_ptr e) {
        if (e)  // the work coroutines report every outcome themselves; this is a bug
            log(log_level::error, "trigger '{}': work ended without its report", name);
    };
    if (txn_) {
        shard_keepalive keep(pool_);
        asio::co_spawn(shard_, run_in_transaction(owner_.shared_from_this(), this, std::move(work)),
                       asio::bind_cancellation_slot(
                           w->signal.slot(), [w, keep, this, slot, ended](std::exception_ptr e) {
                               ended(e);
                               // Free later: the slot's signal is in use while this handler runs.
                               asio::post(shard_, [w, keep, this, slot] { pool_.exits(slot); });
                           }));
        return;
    }
    asio::co_spawn(shard_, run_worker(shard_keepalive(pool_), w, this, slot, std::move(work)),
                   asio::bind_cancellation_slot(w->signal.slot(),
                                                [w, ended](std::exception_ptr e) { ended(e); }));
}

void trigger_runner::work_started(lane& l, partition_key partition, clock::time_point now) {
    l.busy = true;
    l.started = now;
    l.running_partition = partition;
    l.run_seq = metrics_.started(l.started);
    ++running_;
    metrics_.in_flight.store(running_, std::memory_order_relaxed);
}

trigger_runner::lane_ref trigger_runner::work_ended(const lane_ref* known, const message& first,
                                                    clock::time_point now) {
    --running_;
    metrics_.in_flight.store(running_, std::memory_order_relaxed);
    if (cancelled_) return {0, nullptr};  // cancelled at stop: the lanes are gone
    lane_ref ended{0, nullptr};
    if (known) {
        ended = *known;
    } else {
        ended.id = lane_of(first);
        auto it = lanes_.find(ended.id);
        if (it == lanes_.end()) return ended;
        ended.l = &it->second;
    }
    metrics_.ended(ended.l->run_seq, ended.l->started, now);
    return ended;
}

void trigger_runner::complete_pulled(const message& m) {
    (void)finish(work_items{m}, outcome::handled);
}

bool trigger_runner::finish(const work_items& work, outcome result,
                            std::optional<continuation> continuing) {
    // One clock reading ends this work and starts the next one the worker takes.
    const auto now = clock::now();
    const auto ended =
        work_ended(continuing ? &worker_lanes_[continuing->slot] : nullptr, work.front(), now);
    const auto partition = key_of_partition(work.front());
    if (cancelled_) return false;
    if (result == outcome::cancelled) {
        // Cancelled with its revoked partition: never reported done, redelivered to the next
        // owner; its lane is free again. An open transaction must not commit past it.
        if (txn_) txn_->poison();
        if (reports_in_order_)
            for (const auto& m : work) runs_.break_before(m);
        release_lane(ended);
        report_revoke_if_done(partition);
        pump();
        report_fence_if_drained();
        return false;
    }
    report_done({work.data(), work.size()}, result);
    if (continuing && ended.l && continues_in_lane(*ended.l)) {
        // The common case under load, without a round trip through ready_.
        auto& l = *ended.l;
        l.busy = false;
        report_revoke_if_done(partition);
        take_work(l, *continuing->next);
        const auto next = key_of_partition(continuing->next->front());
        work_started(l, next, now);
        pool_.moved_to(continuing->slot, next);
        return true;
    }
    release_lane(ended);
    report_revoke_if_done(partition);
    // The finishing coroutine takes the next ready work itself, ahead of pump()'s spawns.
    const bool continues = continuing && claim_next(*continuing, now);
    pump();
    report_fence_if_drained();
    return continues;
}

void trigger_runner::report_done(std::span<const message> done, outcome result) {
    const auto n = static_cast<std::uint64_t>(done.size());
    switch (result) {
        case outcome::handled:
            add_local(metrics_.handled, n);
            break;
        case outcome::retry_scheduled:  // done once its record is written (record_written)
            add_local(metrics_.retried, n);
            if (reports_in_order_)
                for (const auto& m : done) runs_.break_before(m);
            return;
        case outcome::dead_lettered:  // the same
            add_local(metrics_.dead_lettered, n);
            add_local(metrics_.failed, n);
            if (reports_in_order_)
                for (const auto& m : done) runs_.break_before(m);
            return;
        case outcome::failed:
            add_local(metrics_.failed, n);
            break;
        case outcome::cancelled:
            return;
    }
    if (!reports_in_order_) {
        for (const auto& m : done) runs_.send_alone(m);
        return;
    }
    bool opened = false;
    for (const auto& m : done) opened |= runs_.add(m);
    if (opened) flush_runs_soon();
}

void trigger_runner::flush_runs_soon() {
    if (runs_flush_posted_) return;
    runs_flush_posted_ = true;
    // Behind the work queued now: a burst of handler calls goes back as one run per partition.
    asio::post(shard_, [keep = owner_.shared_from_this(), this] {
        runs_flush_posted_ = false;
        if (!cancelled_) runs_.flush();
    });
}

void trigger_runner::record_written(const message& m) {
    runs_.send_alone(m);
}

void trigger_runner::ended_early(std::span<const message> done, outcome result) {
    if (!cancelled_) report_done(done, result);
}

void trigger_runner::revoke(std::uint32_t topic_id, std::int32_t partition_index,
                            std::uint32_t generation) {
    const auto partition = key_of_partition(topic_id, partition_index);
    for (auto it = lanes_.begin(); it != lanes_.end();) {
        auto& pending = it->second.pending;
        std::erase_if(pending, [&](const message& m) {
            return key_of_partition(m) == partition && m.data()->generation <= generation;
        });
        const bool partition_lane =
            owner_.is_batch() || owner_.options.ordering == ordering::partition;
        it = pending.empty() && !it->second.busy && !partition_lane ? lanes_.erase(it)
                                                                    : std::next(it);
    }
    forget_cached_lane();
    std::erase_if(ready_, [&](std::uint64_t id) {
        auto found = lanes_.find(id);
        return found == lanes_.end() || found->second.pending.empty();
    });
    for (auto& [id, l] : lanes_)
        if (l.ready && l.pending.empty()) l.ready = false;
    revoking_[partition] = generation;
    auto& revoked = revoked_up_to_[partition];
    revoked = std::max(revoked, generation);
    report_revoke_if_done(partition);
}

bool trigger_runner::runs_work_of(partition_key partition) const {
    if (cancelled_) return running_ > 0;  // the lanes are gone, their work may still run
    // A scan, only while a revocation drains: cheaper than counting per partition per message.
    return std::ranges::any_of(lanes_, [partition](const auto& entry) {
        return entry.second.busy && entry.second.running_partition == partition;
    });
}

void trigger_runner::report_revoke_if_done(partition_key partition) {
    if (revoking_.empty()) return;
    auto it = revoking_.find(partition);
    if (it == revoking_.end()) return;
    if (runs_work_of(partition) || (txn_ && !txn_->idle())) return;
    runs_.flush();  // the partition's completions before it is done
    link_.push_completion({completion::kind::revoke_done, owner_.id, topic_id_of(partition),
                           it->second, partition_of(partition), 0});
    revoking_.erase(it);
}

void trigger_runner::release_lane(lane_ref ended) {
    if (!ended.l) return;
    auto& l = *ended.l;
    l.busy = false;
    // Partition lanes are few and reused; key and message lanes go when empty.
    const bool partition_lane = owner_.is_batch() || owner_.options.ordering == ordering::partition;
    if (l.pending.empty() && !l.ready && !partition_lane) {
        lanes_.erase(ended.id);
        forget_cached_lane();
    } else {
        enqueue_ready(ended.id, l);
    }
}

void trigger_runner::finish_in_transaction(const work_items& work, std::exception_ptr error,
                                           outcome result) {
    const auto ended = work_ended(nullptr, work.front(), clock::now());
    if (cancelled_) return;
    txn_->finished(work, error, result);
    release_lane(ended);
    pump();
    txn_->maybe_end();
}

void trigger_runner::report_committed(const std::vector<message>& done, std::size_t dead,
                                      std::size_t gave_up) {
    if (cancelled_) return;
    add_local(metrics_.handled, done.size() - dead - gave_up);
    add_local(metrics_.dead_lettered, dead);
    add_local(metrics_.failed, dead + gave_up);
    for (const auto& m : done) runs_.send_alone(m);
    std::vector<partition_key> revoking;
    for (const auto& entry : revoking_) revoking.push_back(entry.first);
    for (auto partition : revoking) report_revoke_if_done(partition);
    report_fence_if_drained();
}

void trigger_runner::requeue(std::vector<message> again) {
    if (closing_ || cancelled_) return;
    // Back to the front of their lanes, in offset order.
    std::sort(again.begin(), again.end(), [](const message& a, const message& b) {
        return std::pair(key_of_partition(a), a.offset()) >
               std::pair(key_of_partition(b), b.offset());
    });
    std::erase_if(again, [&](const message& m) {
        auto revoked = revoked_up_to_.find(key_of_partition(m));
        return revoked != revoked_up_to_.end() && m.data()->generation <= revoked->second;
    });
    for (auto& m : again) {
        const auto id = lane_of(m);
        auto& l = lanes_[id];
        if (l.pending.empty()) l.oldest_since = std::chrono::steady_clock::now();
        l.pending.push_front(std::move(m));
    }
    for (auto& [id, l] : lanes_) enqueue_ready(id, l);
}

void trigger_runner::close() {
    closing_ = true;
    for (auto it = lanes_.begin(); it != lanes_.end();) {
        it->second.pending.clear();
        it = it->second.busy ? std::next(it) : lanes_.erase(it);
    }
    forget_cached_lane();
    ready_.clear();
    pool_.retire_parked();
    report_fence_if_drained();
}

void trigger_runner::cancel() {
    cancelled_ = true;
    runs_.flush();  // finished before the cancel: worth committing
    if (txn_) txn_->cancel();
    lanes_.clear();
    forget_cached_lane();
    metrics_.clear_running();
    ready_.clear();
    pool_.retire_parked();
    pool_.cancel_all();
}

void trigger_runner::report_fence_if_drained() {
    if (!closing_ || fence_reported_ || running_ > 0 || (txn_ && !txn_->idle())) return;
    fence_reported_ = true;
    runs_.flush();
    link_.push_completion({completion::kind::fence_done, owner_.id, 0, 0, 0, 0});
}

}  // namespace kt::detail
