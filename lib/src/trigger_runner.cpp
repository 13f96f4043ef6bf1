// Per-shard trigger runner: lanes, max_in_flight, handler coroutines with retries and dead
// letters, batches, cancellation, fences.
#include "trigger_runner.hpp"

#include "host/retry_backoff.hpp"

#include <cxxabi.h>

#include <ctime>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"
#include "shared_consumer.hpp"
#include "transaction_cycle.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace kt::detail {
namespace {

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

completion completion_of(const message& m, std::uint32_t trigger_id) {
    const auto* data = m.data();
    return {completion::kind::done, trigger_id,    data->topic_id,
            data->generation,       m.partition(), m.offset()};
}

}  // namespace

std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> name(
            abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), std::free);
        return {status == 0 && name ? name.get() : typeid(e).name(), e.what()};
    } catch (...) {
        return {"unknown", "a non-standard exception"};
    }
}

bool retryable(const retry_policy& policy, const std::exception_ptr& error) {
    if (policy.retryable) return policy.retryable(error);
    try {
        std::rethrow_exception(error);
    } catch (const permanent_error&) {
        return false;
    } catch (...) {
        return true;
    }
}

namespace {

std::string utc_now_iso8601() {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

record dead_letter_record(const trigger_state& trigger, const message& m,
                          const std::pair<std::string, std::string>& failure, unsigned attempts) {
    record r;
    r.topic = trigger.dead_letter_topic;
    if (m.has_key()) r.key = std::string(m.key());
    if (m.has_value()) r.value = std::string(m.value());
    for (const auto& [name, value] : m.headers())
        r.headers.push_back(
            {std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
    auto add = [&](const char* name, std::string value) {
        r.headers.push_back({name, std::move(value)});
    };
    add("kt-original-topic", std::string(m.topic()));
    add("kt-original-partition", std::to_string(m.partition()));
    add("kt-original-offset", std::to_string(m.offset()));
    add("kt-trigger", trigger.options.name);
    add("kt-error-type", failure.first);
    add("kt-error-message", failure.second);
    add("kt-attempts", std::to_string(attempts));
    add("kt-failed-at", utc_now_iso8601());
    return r;
}

/// Use as `cancelled(co_await asio::this_coro::cancellation_state)`. Never co_await a nested
/// awaitable to ask: once cancelled, asio throws operation_aborted at every such co_await, and
/// the runner would never hear that the work ended.
bool cancelled(const asio::cancellation_state& state) {
    return state.cancelled() != asio::cancellation_type::none;
}

/// Waits `delay`; false when cancelled meanwhile.
asio::awaitable<bool> sleep_for(std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec;
}

/// Runs the trigger's code once over `work`; a transform writes through `out`.
asio::awaitable<void> invoke(trigger_state& trigger, const work_items& work, kt::producer* out) {
    const auto& code = trigger.code;
    if (code.batch)
        co_await code.batch(std::span<const message>(work.data(), work.size()));
    else if (code.transform)
        co_await code.transform(work.front(), *out);
    else
        co_await code.plain(work.front());
}

/// exactly_once: one attempt inside the open transaction (or the dead letter write, once the
/// message is out of attempts); retries happen by aborting and running the transaction again.
asio::awaitable<void> run_in_transaction(std::shared_ptr<trigger_state> trigger,
                                         trigger_runner* runner, work_items work) {
    using outcome = trigger_runner::outcome;
    auto& txn = *runner->transaction();
    std::exception_ptr error;
    auto result = outcome::handled;
    try {
        if (const auto* reason = txn.to_dead_letter(work.front())) {
            result = reason->write ? outcome::dead_lettered : outcome::failed;
            if (reason->write) {
                const auto letter =
                    dead_letter_record(*trigger, work.front(), reason->failure, reason->attempts);
                co_await txn.producer().send(letter);
            }
        } else {
            co_await invoke(*trigger, work, &txn.producer());
        }
    } catch (...) {
        error = std::current_exception();
    }
    if (error && cancelled(co_await asio::this_coro::cancellation_state)) {
        (void)runner->finish(work, trigger_runner::outcome::cancelled);
        co_return;
    }
    runner->finish_in_transaction(work, error, error ? outcome::failed : result);
}

/// Writes every message of `work` to the dead letter topic, retrying until acknowledged; false
/// when cancelled first (then nothing may be reported as done).
asio::awaitable<bool> write_dead_letters(trigger_state& trigger, trigger_runner& runner,
                                         const work_items& work,
                                         const std::pair<std::string, std::string>& failure,
                                         unsigned attempts) {
    for (const auto& m : work) {
        const auto letter = dead_letter_record(trigger, m, failure, attempts);
        for (unsigned n = 1;; ++n) {
            std::exception_ptr error;
            try {
                co_await trigger.dead_letters()->send(letter);
                break;
            } catch (...) {
                error = std::current_exception();
            }
            if (cancelled(co_await asio::this_coro::cancellation_state)) co_return false;
            log(log_level::error,
                "trigger '{}': writing {}[{}]@{} to dead letter topic '{}' failed (attempt {}): "
                "{}; retrying, the offset stays uncommitted meanwhile",
                trigger.options.name, m.topic(), m.partition(), m.offset(),
                trigger.dead_letter_topic, n, describe_failure(error).second);
            if (!co_await sleep_for(runner.backoff(trigger.options.retry, n))) co_return false;
        }
    }
    co_return true;
}

/// Runs `work` with retries and dead letters; the outcome goes to trigger_runner::finish.
asio::awaitable<trigger_runner::outcome> run_work(trigger_state& trigger, trigger_runner& runner,
                                                  const work_items& work) {
    using outcome = trigger_runner::outcome;
    const auto& policy = trigger.options.retry;
    const unsigned max_attempts = std::max(1u, policy.max_attempts);
    std::exception_ptr error;
    unsigned attempt = 0;
    for (;;) {
        ++attempt;
        error = nullptr;
        try {
            co_await invoke(trigger, work, trigger.output.get());
        } catch (...) {
            error = std::current_exception();
        }
        if (!error) co_return outcome::handled;
        if (cancelled(co_await asio::this_coro::cancellation_state)) co_return outcome::cancelled;
        const bool again = attempt < max_attempts && retryable(policy, error);
        const auto& first = work.front();
        log(again ? log_level::warning : log_level::error,
            "trigger '{}' failed on {}[{}]@{}{} (attempt {} of {}): {}{}", trigger.options.name,
            first.topic(), first.partition(), first.offset(),
            work.size() > 1 ? fmt::format(" (batch of {})", work.size()) : std::string{}, attempt,
            max_attempts, describe_failure(error).second, again ? "; retrying" : "");
        if (!again) break;
        add_local(runner.retried, 1);
        if (!co_await sleep_for(runner.backoff(policy, attempt))) co_return outcome::cancelled;
    }
    if (trigger.dead_letter_topic.empty()) co_return outcome::failed;
    const bool written =
        co_await write_dead_letters(trigger, runner, work, describe_failure(error), attempt);
    co_return written ? outcome::dead_lettered : outcome::cancelled;
}

/// Work between two yields of a continuing coroutine, so one busy trigger does not hold its
/// shard for long.
constexpr unsigned continuation_batch = 64;

/// A worker: runs `work`, then whatever ready work the runner hands over when it finishes, then
/// parks until start() gives it more. A coroutine per worker instead of one per message: waking a
/// parked worker is one post, against a frame, a work guard, a cancellation handler and two posts.
asio::awaitable<void> run_worker(std::optional<shard_keepalive> keep,
                                 std::shared_ptr<trigger_runner::worker> self,
                                 trigger_state* trigger, trigger_runner* runner, std::uint32_t slot,
                                 work_items work) {
    for (unsigned ran = 1;; ++ran) {
        const auto result = co_await run_work(*trigger, *runner, work);
        work_items next;
        if (!runner->finish(work, result, trigger_runner::continuation{slot, &next})) {
            if (!runner->may_park()) {
                runner->worker_exits(slot);
                co_return;
            }
            work.clear();  // a parked worker pins no message (a stop waits for every one)
            // Cancelled work leaves the coroutine cancelled, and its next co_await would throw.
            if (cancelled(co_await asio::this_coro::cancellation_state))
                co_await asio::this_coro::reset_cancellation_state();
            if (!co_await runner->park(slot, keep)) co_return;  // the runner may be gone
            next = std::move(self->handoff);
            self->handoff.clear();
        }
        work = std::move(next);
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

}  // namespace

trigger_state::trigger_state(std::uint32_t trigger_id, trigger_options opts,
                             trigger_code trigger_code, std::shared_ptr<subscription_inbox> pull)
    : id(trigger_id),
      options(std::move(opts)),
      code(std::move(trigger_code)),
      inbox(std::move(pull)) {}

void trigger_state::bind(runtime& rt, std::shared_ptr<shared_consumer> owner) {
    consumer = std::move(owner);
    for (unsigned shard = 0; shard < rt.shard_count(); ++shard)
        runners.push_back(
            std::make_unique<trigger_runner>(*this, shard, rt.shard(shard), consumer->link(shard)));
}

std::shared_ptr<kt::producer> trigger_state::dead_letters() {
    std::lock_guard lock(dead_letters_mutex_);
    if (!dead_letters_) dead_letters_ = open_dead_letters();
    return dead_letters_;
}

trigger_stats trigger_state::stats() const {
    trigger_stats s{options.name, options.topic};
    for (const auto& runner : runners) {
        s.handled += runner->handled.load(std::memory_order_relaxed);
        s.failed += runner->failed.load(std::memory_order_relaxed);
        s.retried += runner->retried.load(std::memory_order_relaxed);
        s.dead_lettered += runner->dead_lettered.load(std::memory_order_relaxed);
        s.in_flight += runner->in_flight.load(std::memory_order_relaxed);
    }
    return s;
}

trigger_metrics trigger_state::metrics() const {
    const auto totals = stats();
    trigger_metrics m{.name = totals.name,
                      .topic = totals.topic,
                      .handled = totals.handled,
                      .failed = totals.failed,
                      .retried = totals.retried,
                      .dead_lettered = totals.dead_lettered,
                      .in_flight = totals.in_flight,
                      .paused = paused.load(std::memory_order_relaxed)};
    std::int64_t oldest = 0;
    for (const auto& runner : runners) {
        auto& histogram = m.handler_duration;
        for (std::size_t i = 0; i < histogram.counts.size(); ++i) {
            const auto n = runner->durations[i].load(std::memory_order_relaxed);
            histogram.counts[i] += n;
            histogram.count += n;
        }
        histogram.sum_seconds +=
            static_cast<double>(runner->duration_sum_ns.load(std::memory_order_relaxed)) / 1e9;
        const auto since = runner->oldest_running_since_ns.load(std::memory_order_relaxed);
        if (since != 0 && (oldest == 0 || since < oldest)) oldest = since;
    }
    if (oldest != 0)
        m.oldest_in_flight_seconds = std::max(
            0.0, static_cast<double>(steady_ns(std::chrono::steady_clock::now()) - oldest) / 1e9);
    return m;
}

trigger_runner::trigger_runner(trigger_state& owner, unsigned shard_index,
                               asio::any_io_executor shard, shard_link& link)
    : owner_(owner),
      shard_index_(shard_index),
      shard_(std::move(shard)),
      link_(link),
      jitter_random_(owner.id * 7919u + shard_index + 1) {
    if (owner.options.delivery == delivery_guarantee::exactly_once)
        txn_ = std::make_unique<transaction_cycle>(*this);
}

trigger_runner::~trigger_runner() {
    // Parked workers hold no keepalive, so the runner can go while they wait: tell them to leave.
    retire_parked();
}

void trigger_runner::retire_parked() {
    for (const auto slot : std::exchange(parked_, {})) {
        wake(*std::exchange(runs_[slot], nullptr), false);
        free_runs_.push_back(slot);
    }
}

void trigger_runner::wake(worker& w, bool with_work) {
    // Posted, never called inline: resuming here would re-enter the runner mid-update.
    asio::post(shard_, [resume = std::move(*w.parked), with_work]() mutable {
        std::move(resume)(with_work);
    });
    w.parked.reset();
}

std::uint32_t trigger_runner::new_slot() {
    std::uint32_t slot;
    if (free_runs_.empty()) {
        slot = static_cast<std::uint32_t>(runs_.size());
        runs_.emplace_back();
    } else {
        slot = free_runs_.back();
        free_runs_.pop_back();
    }
    runs_[slot] = std::make_shared<worker>();
    return slot;
}

void trigger_runner::worker_exits(std::uint32_t slot) {
    runs_[slot] = nullptr;  // its signal lives on with the coroutine's own reference
    free_runs_.push_back(slot);
}

asio::awaitable<bool> trigger_runner::park(std::uint32_t slot,
                                           std::optional<shard_keepalive>& keep) {
    auto self = runs_[slot];  // the runner may be gone when this resumes
    self->active = false;
    const bool resumed = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(bool)>(
        [this, slot, &keep](auto resume) {
            runs_[slot]->parked.emplace(std::move(resume));
            parked_.push_back(slot);
            // Last: this may destroy the trigger, whose runner then retires the worker just parked.
            auto released = std::move(keep);
            keep.reset();
        },
        asio::use_awaitable);
    if (resumed) {
        keep.emplace(std::move(*self->handoff_keep));
        self->handoff_keep.reset();
    }
    co_return resumed;
}

shard_keepalive::shard_keepalive(trigger_runner& runner) noexcept : runner_(&runner) {
    if (runner.keepalives_++ == 0) runner.kept_ = runner.owner_.shared_from_this();
}

shard_keepalive::shard_keepalive(const shard_keepalive& other) noexcept : runner_(other.runner_) {
    if (runner_) ++runner_->keepalives_;
}

shard_keepalive::~shard_keepalive() {
    if (!runner_ || --runner_->keepalives_ > 0) return;
    // May destroy the trigger and with it the runner: nothing of it is touched after this.
    auto last = std::move(runner_->kept_);
}

std::chrono::milliseconds trigger_runner::backoff(const retry_policy& policy, unsigned attempt) {
    return retry_backoff(policy, attempt, jitter_random_);
}

std::uint64_t trigger_runner::lane_of(const message& m) const {
    const auto partition = static_cast<std::uint64_t>(m.partition());
    if (owner_.is_batch()) return partition;
    switch (owner_.options.ordering) {
        case ordering::partition:
            return partition;
        case ordering::key:
            return fnv1a(m.key()) * 31 + partition;
        case ordering::none:
            break;
    }
    return (partition << 48) ^ static_cast<std::uint64_t>(m.offset());
}

void trigger_runner::deliver(message m) {
    if (closing_ || cancelled_) return;  // dropped: the trigger is leaving or the stop timed out
    const auto id = lane_of(m);
    auto& l = lanes_[id];
    if (owner_.is_batch() && l.pending.empty()) l.oldest_since = std::chrono::steady_clock::now();
    l.pending.push_back(std::move(m));
    enqueue_ready(id, l);
    pump();
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
    const std::size_t count =
        owner_.is_batch() ? std::max<std::size_t>(1, owner_.code.batching.max_messages) : 1;
    while (work.size() < count && !l.pending.empty()) {
        work.push_back(std::move(l.pending.front()));
        l.pending.pop_front();
    }
    if (owner_.is_batch() && !l.pending.empty()) l.oldest_since = std::chrono::steady_clock::now();
    return work;
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
        start(id, take_work(*l));
        if (txn_) txn_->started();
    }
}

bool trigger_runner::claim_next(const continuation& into) {
    if (owner_.paused.load(std::memory_order_relaxed) || txn_ ||
        running_ >= std::max(1u, owner_.options.max_in_flight))
        return false;
    std::uint64_t id;
    auto* l = take_ready_lane(id);
    if (!l) return false;
    *into.next = take_work(*l);
    const auto partition = into.next->front().partition();
    work_started(id, partition);
    runs_[into.slot]->partition = partition;
    return true;
}

void trigger_runner::start(std::uint64_t lane_id, work_items work) {
    work_started(lane_id, work.front().partition());
    if (owner_.inbox) {
        // Pull-style: the subscriber calls complete(), which comes back as complete_pulled().
        asio::post(
            owner_.inbox->executor, [inbox = owner_.inbox, m = std::move(work.front())]() mutable {
                if (!inbox->channel.try_send(boost::system::error_code{}, std::move(m)))
                    log(log_level::error, "subscription inbox full or closed; message dropped");
            });
        return;
    }
    const auto partition = work.front().partition();
    if (!parked_.empty()) {
        const auto slot = parked_.back();
        parked_.pop_back();
        auto& w = *runs_[slot];
        w.partition = partition;
        w.active = true;
        w.handoff = std::move(work);
        w.handoff_keep.emplace(*this);
        wake(w, true);
        return;
    }
    const auto slot = new_slot();
    auto w = runs_[slot];
    w->partition = partition;
    w->active = true;
    // Neither completion handler touches the runner: it may be gone when they run.
    auto ended = [name = owner_.options.name](std::exception_ptr e) {
        if (e)  // run_work reports every outcome itself; this is a bug
            log(log_level::error, "trigger '{}': work ended without its report", name);
    };
    if (txn_) {
        shard_keepalive keep(*this);
        asio::co_spawn(shard_, run_in_transaction(owner_.shared_from_this(), this, std::move(work)),
                       asio::bind_cancellation_slot(
                           w->signal.slot(), [w, keep, this, slot, ended](std::exception_ptr e) {
                               ended(e);
                               // Free later: the slot's signal is in use while this handler runs.
                               asio::post(shard_, [w, keep, this, slot] { worker_exits(slot); });
                           }));
        return;
    }
    asio::co_spawn(shard_,
                   run_worker(shard_keepalive(*this), w, &owner_, this, slot, std::move(work)),
                   asio::bind_cancellation_slot(w->signal.slot(),
                                                [w, ended](std::exception_ptr e) { ended(e); }));
}

void trigger_runner::work_started(std::uint64_t lane_id, std::int32_t partition) {
    auto& l = lanes_[lane_id];
    l.busy = true;
    l.run_seq = next_run_seq_++;
    l.started = std::chrono::steady_clock::now();
    running_since_.emplace_back(l.run_seq, l.started);
    if (running_since_.size() == 1) publish_oldest();
    ++running_;
    ++running_by_partition_[partition];
    in_flight.store(running_, std::memory_order_relaxed);
}

void trigger_runner::work_ended(const message& first) {
    --running_;
    --running_by_partition_[first.partition()];
    in_flight.store(running_, std::memory_order_relaxed);
    auto it = lanes_.find(lane_of(first));
    if (it == lanes_.end()) return;  // cancelled at stop: lanes are gone
    const auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.started);
    const auto& bounds = duration_histogram::bounds;
    const auto bucket = static_cast<std::size_t>(
        std::lower_bound(bounds.begin(), bounds.end(), seconds.count()) - bounds.begin());
    add_local(durations[bucket], 1);
    add_local(duration_sum_ns,
              static_cast<std::uint64_t>(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(seconds).count()));
    const auto seq = it->second.run_seq;
    auto running = std::lower_bound(running_since_.begin(), running_since_.end(),
                                    std::pair{seq, std::chrono::steady_clock::time_point::min()});
    if (running != running_since_.end() && running->first == seq) {
        const bool was_oldest = running == running_since_.begin();
        running_since_.erase(running);
        if (was_oldest) publish_oldest();
    }
}

void trigger_runner::publish_oldest() {
    oldest_running_since_ns.store(
        running_since_.empty() ? 0 : steady_ns(running_since_.front().second),
        std::memory_order_relaxed);
}

void trigger_runner::complete_pulled(const message& m) {
    (void)finish(work_items{m}, outcome::handled);
}

bool trigger_runner::finish(const work_items& work, outcome result,
                            std::optional<continuation> continuing) {
    work_ended(work.front());
    const auto partition = work.front().partition();
    if (cancelled_) return false;
    if (result == outcome::cancelled) {
        // Cancelled with its revoked partition: never reported done, redelivered to the next
        // owner; its lane is free again. An open transaction must not commit past it.
        if (txn_) txn_->poison();
        release_lane(work.front());
        report_revoke_if_done(partition);
        pump();
        report_fence_if_drained();
        return false;
    }
    const auto n = static_cast<std::uint64_t>(work.size());
    switch (result) {
        case outcome::handled:
            add_local(handled, n);
            break;
        case outcome::dead_lettered:
            add_local(dead_lettered, n);
            [[fallthrough]];
        case outcome::failed:
            add_local(failed, n);
            break;
        case outcome::cancelled:
            break;
    }
    for (const auto& m : work) link_.push_completion(completion_of(m, owner_.id));
    release_lane(work.front());
    report_revoke_if_done(partition);
    // The finishing coroutine takes the next ready work itself, ahead of pump()'s spawns.
    const bool continues = continuing && claim_next(*continuing);
    pump();
    report_fence_if_drained();
    return continues;
}

void trigger_runner::revoke(std::uint32_t topic_id, std::int32_t partition,
                            std::uint32_t generation) {
    for (auto it = lanes_.begin(); it != lanes_.end();) {
        auto& pending = it->second.pending;
        std::erase_if(pending, [&](const message& m) {
            return m.partition() == partition && m.data()->generation <= generation;
        });
        const bool partition_lane =
            owner_.is_batch() || owner_.options.ordering == ordering::partition;
        it = pending.empty() && !it->second.busy && !partition_lane ? lanes_.erase(it)
                                                                    : std::next(it);
    }
    std::erase_if(ready_, [&](std::uint64_t id) {
        auto found = lanes_.find(id);
        return found == lanes_.end() || found->second.pending.empty();
    });
    for (auto& [id, l] : lanes_)
        if (l.ready && l.pending.empty()) l.ready = false;
    revoking_[partition] = {topic_id, generation};
    auto& revoked = revoked_up_to_[partition];
    revoked = std::max(revoked, generation);
    report_revoke_if_done(partition);
}

void trigger_runner::report_revoke_if_done(std::int32_t partition) {
    auto it = revoking_.find(partition);
    if (it == revoking_.end()) return;
    if (running_by_partition_[partition] > 0 || (txn_ && !txn_->idle())) return;
    link_.push_completion({completion::kind::revoke_done, owner_.id, it->second.topic_id,
                           it->second.generation, partition, 0});
    revoking_.erase(it);
}

void trigger_runner::cancel_partition(std::int32_t partition) {
    for (auto& w : runs_)
        if (w && w->active && w->partition == partition)
            w->signal.emit(asio::cancellation_type::all);
}

void trigger_runner::release_lane(const message& first) {
    const auto id = lane_of(first);
    if (auto it = lanes_.find(id); it != lanes_.end()) {
        it->second.busy = false;
        // Partition lanes are few and reused; key and message lanes go when empty.
        const bool partition_lane =
            owner_.is_batch() || owner_.options.ordering == ordering::partition;
        if (it->second.pending.empty() && !it->second.ready && !partition_lane)
            lanes_.erase(it);
        else
            enqueue_ready(id, it->second);
    }
}

void trigger_runner::finish_in_transaction(const work_items& work, std::exception_ptr error,
                                           outcome result) {
    work_ended(work.front());
    if (cancelled_) return;
    txn_->finished(work, error, result);
    release_lane(work.front());
    pump();
    txn_->maybe_end();
}

void trigger_runner::report_committed(const std::vector<message>& done, std::size_t dead,
                                      std::size_t gave_up) {
    if (cancelled_) return;
    add_local(handled, done.size() - dead - gave_up);
    add_local(dead_lettered, dead);
    add_local(failed, dead + gave_up);
    for (const auto& m : done) link_.push_completion(completion_of(m, owner_.id));
    std::vector<std::int32_t> revoking;
    for (const auto& entry : revoking_) revoking.push_back(entry.first);
    for (auto partition : revoking) report_revoke_if_done(partition);
    report_fence_if_drained();
}

void trigger_runner::requeue(std::vector<message> again) {
    if (closing_ || cancelled_) return;
    // Back to the front of their lanes, in offset order.
    std::sort(again.begin(), again.end(), [](const message& a, const message& b) {
        return std::pair(a.partition(), a.offset()) > std::pair(b.partition(), b.offset());
    });
    std::erase_if(again, [&](const message& m) {
        auto revoked = revoked_up_to_.find(m.partition());
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
    ready_.clear();
    retire_parked();
    report_fence_if_drained();
}

void trigger_runner::cancel() {
    cancelled_ = true;
    if (txn_) txn_->cancel();
    lanes_.clear();
    running_since_.clear();
    publish_oldest();
    ready_.clear();
    retire_parked();
    for (auto& w : runs_)
        if (w && w->active) w->signal.emit(asio::cancellation_type::all);
}

void trigger_runner::report_fence_if_drained() {
    if (!closing_ || fence_reported_ || running_ > 0 || (txn_ && !txn_->idle())) return;
    fence_reported_ = true;
    link_.push_completion({completion::kind::fence_done, owner_.id, 0, 0, 0, 0});
}

}  // namespace kt::detail
