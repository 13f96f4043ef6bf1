// A trigger's per-shard runner: lanes that keep the ordering mode, max_in_flight, retries, dead
// letters, batches and cancellation.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/small_vector.hpp>

#include <kt/trigger_host.hpp>

#include "shard/shard_link.hpp"
#include "shard/shard_map.hpp"

namespace kt::detail {

class shared_consumer;
class trigger_runner;
class transaction_cycle;

/// Pull-style delivery point of a subscription; used only on its executor.
class subscription_inbox {
  public:
    using channel_type =
        boost::asio::experimental::channel<void(boost::system::error_code, message)>;

    subscription_inbox(boost::asio::any_io_executor ex, std::size_t capacity, runtime& shards)
        : executor(ex), channel(ex, capacity), rt(&shards) {}

    boost::asio::any_io_executor executor;
    std::string name;
    channel_type channel;
    runtime* rt;
    std::weak_ptr<class trigger_state> trigger;
};

/// What a trigger runs: exactly one of the callables is set (none for a pull subscription).
struct trigger_code {
    handler plain;
    transform_handler transform;
    batch_handler batch;
    batch_options batching;
};

/// Messages run together: one, or a batch of one partition.
using work_items = boost::container::small_vector<message, 1>;

/// Everything about one trigger. Immutable after construction except through its runners (each
/// touched only on its shard) and atomics.
class trigger_state : public std::enable_shared_from_this<trigger_state> {
  public:
    trigger_state(std::uint32_t trigger_id, trigger_options opts, trigger_code trigger_code,
                  std::shared_ptr<subscription_inbox> pull_inbox);

    /// Creates one runner per shard, bound to the consumer's links.
    void bind(runtime& rt, std::shared_ptr<shared_consumer> owner);
    trigger_stats stats() const;
    /// Counters, handler durations and the oldest running handler, summed over shards.
    trigger_metrics metrics() const;
    bool is_batch() const noexcept { return static_cast<bool>(code.batch); }

    const std::uint32_t id;
    const trigger_options options;
    const trigger_code code;
    const std::shared_ptr<subscription_inbox> inbox;  // null for handler triggers
    std::string dead_letter_topic;                    // empty: dead letters off
    /// The dead letter writer, opened on first use (most triggers never need one, and a producer
    /// costs threads). Any shard; the first call may block briefly.
    std::shared_ptr<kt::producer> dead_letters();
    std::function<std::shared_ptr<kt::producer>()> open_dead_letters;  // set with the topic
    /// After removal: lets go of the producers so the pool can close them.
    void release_producers() {
        std::lock_guard lock(dead_letters_mutex_);
        dead_letters_.reset();
        output.reset();
    }
    std::shared_ptr<kt::producer> output;  // transform triggers (not exactly_once)
    std::shared_ptr<shared_consumer> consumer;
    std::vector<std::unique_ptr<trigger_runner>> runners;  // runners[i] lives on shard i
    /// pause_trigger(): runners start no new work while set.
    std::atomic<bool> paused{false};

  private:
    std::mutex dead_letters_mutex_;
    std::shared_ptr<kt::producer> dead_letters_;
};

/// Keeps a trigger alive while work runs on one shard. Copies are counted by the runner without
/// atomics (they are made and dropped on its shard) and only the first holds the trigger's
/// shared_ptr: one shared count per busy period instead of several per message, so the count no
/// longer bounces between the cores of two busy shards. Shard thread only.
class shard_keepalive {
  public:
    explicit shard_keepalive(trigger_runner& runner) noexcept;
    shard_keepalive(const shard_keepalive& other) noexcept;
    shard_keepalive(shard_keepalive&& other) noexcept
        : runner_(std::exchange(other.runner_, nullptr)) {}
    shard_keepalive& operator=(const shard_keepalive&) = delete;
    shard_keepalive& operator=(shard_keepalive&&) = delete;
    ~shard_keepalive();

  private:
    trigger_runner* runner_;
};

/// Runs one trigger's messages on one shard. A "lane" is the unit that runs one piece of work at a
/// time: the partition, the (partition, key), or the message itself, by ordering mode (batch
/// triggers use partition lanes). Shard-local: every member function runs on the shard's thread.
class trigger_runner {
  public:
    trigger_runner(trigger_state& owner, unsigned shard_index, boost::asio::any_io_executor shard,
                   shard_link& link);
    ~trigger_runner();

    void deliver(message m);
    /// A subscriber finished `m` (pull subscriptions).
    void complete_pulled(const message& m);
    /// Fence for removal: drop queued messages; report fence_done once nothing runs.
    void close();
    /// Stop deadline passed: cancel running handlers, drop queued ones, report nothing more.
    void cancel();
    /// `partition` was revoked: drop its queued messages of `generation` or older; report
    /// revoke_done once none of its handlers runs (or sits in an open transaction).
    void revoke(std::uint32_t topic_id, std::int32_t partition, std::uint32_t generation);
    /// The revoke deadline passed: cancel the partition's running handlers (never reported).
    void cancel_partition(std::int32_t partition);

    // ---- used by the work coroutines and the transaction cycle (same shard) ----
    enum class outcome { handled, failed, dead_lettered, cancelled };
    void pump();
    /// exactly_once: work finished inside the open transaction (reported when it commits).
    void finish_in_transaction(const work_items& work, std::exception_ptr error, outcome result);
    /// exactly_once: the transaction holding `done` committed (`dead_lettered` and `failed` of
    /// them did not succeed).
    void report_committed(const std::vector<message>& done, std::size_t dead_lettered,
                          std::size_t failed);
    /// exactly_once: the transaction holding `again` aborted; they run again, in order.
    void requeue(std::vector<message> again);
    transaction_cycle* transaction() noexcept { return txn_.get(); }
    /// Work running now (the transaction cycle ends a transaction only when none does).
    unsigned running() const noexcept { return running_; }
    /// Work waits for a free slot (the transaction may take more before it ends).
    bool has_ready() const noexcept { return !ready_.empty(); }
    /// Calls `f(message)` for every message waiting in a lane, not yet started.
    template <typename F>
    void for_each_pending(F&& f) const {
        for (const auto& [id, l] : lanes_)
            for (const auto& m : l.pending) f(m);
    }
    /// A long-lived work coroutine: it runs work, then parks until start() hands it more. Shared
    /// by the runner and the coroutine, so its cancellation signal lives as long as either.
    struct worker {
        boost::asio::cancellation_signal signal;
        std::int32_t partition = 0;
        bool active = false;  // running work: cancellations reach it
        /// Set while parked; resumes it with true (work in `handoff`) or false (leave).
        std::optional<boost::asio::any_completion_handler<void(bool)>> parked;
        work_items handoff;
        std::optional<shard_keepalive> handoff_keep;
    };
    /// Whether a worker without work may park (not once retired, closing or cancelled, nor in
    /// transactional runners).
    bool may_park() const noexcept { return !retired_ && !closing_ && !cancelled_ && !txn_; }
    /// The host stopped: parked workers leave and no worker parks again. A parked worker holds
    /// outstanding work on its io_context, which would otherwise never run out of work.
    void retire() {
        retired_ = true;
        retire_parked();
    }
    /// Parks the worker in `slot` until start() hands it work (true, `keep` taken again) or it is
    /// told to leave (false; the runner may be gone by then). `keep` is released while parked, so
    /// parked workers never keep the trigger alive.
    boost::asio::awaitable<bool> park(std::uint32_t slot, std::optional<shard_keepalive>& keep);
    /// The worker in `slot` ends (it still holds a keepalive).
    void worker_exits(std::uint32_t slot);
    /// Where the coroutine in `slot` takes its next work from finish().
    struct continuation {
        std::uint32_t slot;
        work_items* next;
    };
    /// The work finished with `result`; reports completions (unless cancelled) and starts more.
    /// With `continuing`, moves the next ready work (already counted as started) into
    /// `continuing->next` for that coroutine to run itself, and returns true.
    bool finish(const work_items& work, outcome result,
                std::optional<continuation> continuing = std::nullopt);
    /// Backoff before retry `attempt` (1-based) of the policy, jittered.
    std::chrono::milliseconds backoff(const retry_policy& policy, unsigned attempt);
    trigger_state& owner() noexcept { return owner_; }
    unsigned shard_index() const noexcept { return shard_index_; }
    boost::asio::any_io_executor executor() const { return shard_; }

    // Written only on this shard, read anywhere (relaxed).
    std::atomic<std::uint64_t> handled{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> retried{0};
    std::atomic<std::uint64_t> dead_lettered{0};
    std::atomic<std::uint64_t> in_flight{0};
    std::array<std::atomic<std::uint64_t>, duration_histogram::bounds.size() + 1> durations{};
    std::atomic<std::uint64_t> duration_sum_ns{0};
    /// steady_clock nanoseconds when the oldest running work started; 0 when none runs.
    std::atomic<std::int64_t> oldest_running_since_ns{0};

  private:
    friend class shard_keepalive;
    unsigned keepalives_ = 0;
    std::shared_ptr<trigger_state> kept_;  // set while keepalives_ > 0
    struct lane {
        std::deque<message> pending;
        bool busy = false;
        bool ready = false;  // queued in ready_
        // Batch triggers: when the oldest pending message arrived, and the wait for more.
        std::chrono::steady_clock::time_point oldest_since{};
        std::unique_ptr<boost::asio::steady_timer> batch_timer;
        bool batch_timer_armed = false;
        // The work running in this lane: its sequence number and start.
        std::uint64_t run_seq = 0;
        std::chrono::steady_clock::time_point started{};
    };
    /// Bookkeeping shared by every way work starts and ends (counts, durations, oldest).
    void work_started(std::uint64_t lane_id, std::int32_t partition);
    void work_ended(const message& first);
    void publish_oldest();

    std::uint64_t lane_of(const message& m) const;
    void enqueue_ready(std::uint64_t lane_id, lane& l);
    bool batch_due(std::uint64_t lane_id, lane& l);
    work_items take_work(lane& l);
    /// The first ready lane with work to start (its id in `id`), or nullptr.
    lane* take_ready_lane(std::uint64_t& id);
    /// Next work for a continuing coroutine, when max_in_flight allows (not for transactions).
    bool claim_next(const continuation& into);
    void release_lane(const message& first);
    void start(std::uint64_t lane_id, work_items work);
    void report_fence_if_drained();

    trigger_state& owner_;
    const unsigned shard_index_;
    boost::asio::any_io_executor shard_;
    shard_link& link_;
    std::unordered_map<std::uint64_t, lane> lanes_;
    std::deque<std::uint64_t> ready_;
    unsigned running_ = 0;
    bool closing_ = false;
    bool retired_ = false;
    bool cancelled_ = false;
    bool fence_reported_ = false;
    std::uint64_t next_run_seq_ = 0;
    /// (run_seq, start) of running work in start order; bounded by max_in_flight.
    std::vector<std::pair<std::uint64_t, std::chrono::steady_clock::time_point>> running_since_;
    void report_revoke_if_done(std::int32_t partition);
    /// Slot of a new worker (or of transactional work).
    std::uint32_t new_slot();
    /// Tells every parked worker to leave (removal, cancellation, destruction).
    void retire_parked();
    /// Resumes the parked worker `w`: with the work in its `handoff`, or to leave.
    void wake(worker& w, bool with_work);
    /// Workers by slot (null: free); parked ones are woken before new ones are spawned, so
    /// starting work usually costs one post instead of a coroutine.
    std::vector<std::shared_ptr<worker>> runs_;
    std::vector<std::uint32_t> free_runs_;
    std::vector<std::uint32_t> parked_;
    std::unordered_map<std::int32_t, unsigned> running_by_partition_;
    struct revocation {
        std::uint32_t topic_id;    // in the consumer's topic table, for the revoke_done report
        std::uint32_t generation;  // the revoked one
    };
    std::unordered_map<std::int32_t, revocation> revoking_;          // by partition
    std::unordered_map<std::int32_t, std::uint32_t> revoked_up_to_;  // never run these again
    std::minstd_rand jitter_random_;
    std::unique_ptr<transaction_cycle> txn_;  // exactly_once triggers only
};

/// (type, message) of a handler's failure, for logs and dead letter headers.
std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error);
/// Whether `policy` retries `error` (default: everything except kt::permanent_error).
bool retryable(const retry_policy& policy, const std::exception_ptr& error);

/// Adds to a counter that only one shard writes: a plain load and store, no atomic
/// read-modify-write (readers on other threads see it relaxed).
inline void add_local(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace kt::detail
