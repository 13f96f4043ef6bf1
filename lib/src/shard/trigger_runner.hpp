// A trigger's per-shard runner: lanes that keep the ordering mode, max_in_flight, batches,
// revoke, fence and cancellation; it sequences its worker pool and handler calls. Shard thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <kt/trigger_host.hpp>

#include "shard/completion_runs.hpp"
#include "shard/handler_call.hpp"
#include "shard/runner_metrics.hpp"
#include "shard/shard_link.hpp"
#include "shard/shard_map.hpp"
#include "shard/trigger_state.hpp"
#include "shard/worker_pool.hpp"

namespace kt::detail {

class shared_consumer;
class transaction_cycle;

/// Runs one trigger's messages on one shard. A "lane" is the unit that runs one piece of work at a
/// time: the partition, the (partition, key), or the message itself, by ordering mode (batch
/// triggers use partition lanes). Shard-local: every member function runs on the shard's thread.
class trigger_runner final : private batch_progress {
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
    /// The partition was revoked: drop its queued messages of `generation` or older; report
    /// revoke_done once none of its handlers runs (or sits in an open transaction).
    void revoke(std::uint32_t topic_id, std::int32_t partition, std::uint32_t generation);
    /// The revoke deadline passed: cancel the partition's running handlers (never reported).
    void cancel_partition(std::uint32_t topic_id, std::int32_t partition) {
        pool_.cancel_partition(key_of_partition(topic_id, partition));
    }
    /// The host stopped: parked workers leave and no worker parks again.
    void retire() { pool_.retire(); }

    // ---- used by the work coroutines and the transaction cycle (same shard) ----
    using outcome = call_outcome;
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
    /// exactly_once: starts the transactional producer now rather than at the first message.
    /// Its init_transactions aborts a transaction that a previous incarnation (same
    /// transactional.id) left open, which holds back the committed offsets the consumer reads
    /// when it is assigned partitions (rebalance::read_committed).
    void open_transaction_early();
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
    /// Whether a worker without work may park (not once retired, closing or cancelled, nor in
    /// transactional runners).
    bool may_park() const noexcept { return !pool_.retired() && !closing_ && !cancelled_ && !txn_; }
    /// Where the coroutine in `slot` takes its next work from finish().
    struct continuation {
        std::uint32_t slot;
        work_items* next;
    };
    /// The work finished with `result`; reports completions (unless cancelled) and starts more.
    /// With `continuing`, moves the next ready work (already counted as started) into
    /// `continuing->next` for that coroutine to run itself, and returns true; `continuing->next`
    /// may be `work` itself, replaced once nothing reads it any more.
    bool finish(const work_items& work, outcome result,
                std::optional<continuation> continuing = std::nullopt);
    /// Backoff before retry `attempt` (1-based) of the policy, jittered.
    std::chrono::milliseconds backoff(const retry_policy& policy, unsigned attempt) {
        return calls_.backoff(policy, attempt);
    }
    trigger_state& owner() noexcept { return owner_; }
    unsigned shard_index() const noexcept { return shard_index_; }
    boost::asio::any_io_executor executor() const { return shard_; }
    worker_pool& workers() noexcept { return pool_; }
    handler_call& calls() noexcept { return calls_; }
    runner_metrics& metrics() noexcept { return metrics_; }
    const runner_metrics& metrics() const noexcept { return metrics_; }

  private:
    using clock = std::chrono::steady_clock;

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
        partition_key running_partition = 0;  // while busy
    };
    /// A lane by id; `l` is null once the lanes are gone (cancelled at stop).
    struct lane_ref {
        std::uint64_t id;
        lane* l;
    };
    /// Bookkeeping shared by every way work starts and ends (counts, durations, oldest);
    /// work_ended() gives the lane of the work for release_lane().
    void work_started(lane& l, partition_key partition, clock::time_point now);
    /// `known`: the lane of the work, when the caller knows it (else looked up).
    lane_ref work_ended(const lane_ref* known, const message& first, clock::time_point now);
    /// Counts and reports messages that ended with `result` (not cancelled).
    void report_done(std::span<const message> done, outcome result);
    /// Sends the open completion runs once the work queued on the shard now has run.
    void flush_runs_soon();
    void ended_early(std::span<const message> done, outcome result) override;
    void record_written(const message& m) override;
    bool gave_up_writes() const noexcept override { return cancelled_ || closing_; }

    std::uint64_t lane_of(const message& m) const;
    /// The lane `id`, made when missing.
    lane& lane_at(std::uint64_t id);
    /// Whether the worker that just ended work of `l` goes on with the lane's next message
    /// itself: no other lane waits for a worker, and nothing else would hold that message back.
    bool continues_in_lane(const lane& l) const;
    /// Lanes were erased: the cached one may be among them.
    void forget_cached_lane() noexcept { cached_lane_ = {0, nullptr}; }
    /// options.key_of(m); empty when it throws.
    std::string extracted_key(const message& m) const;
    void enqueue_ready(std::uint64_t lane_id, lane& l);
    bool batch_due(std::uint64_t lane_id, lane& l);
    /// The lane's next work; or in place of `work`.
    work_items take_work(lane& l);
    void take_work(lane& l, work_items& work);
    /// The first ready lane with work to start (its id in `id`), or nullptr.
    lane* take_ready_lane(std::uint64_t& id);
    /// Next work for a continuing coroutine, when max_in_flight allows (not for transactions).
    bool claim_next(const continuation& into, clock::time_point now);
    void release_lane(lane_ref ended);
    void start(lane_ref ref, work_items work);
    /// The worker in `slot` runs work of `ref`.
    void worker_runs(std::uint32_t slot, lane_ref ref);
    void report_fence_if_drained();
    /// Whether work of `partition` is running (a revocation waits for it).
    bool runs_work_of(partition_key partition) const;
    void report_revoke_if_done(partition_key partition);

    trigger_state& owner_;
    const unsigned shard_index_;
    boost::asio::any_io_executor shard_;
    shard_link& link_;
    runner_metrics metrics_;
    handler_call calls_;
    // Partition lanes, without transactions or a subscriber: each partition's messages are
    // reported in the order they were handed over, so they go back as runs.
    const bool reports_in_order_;
    completion_runs runs_;
    bool runs_flush_posted_ = false;
    std::unordered_map<std::uint64_t, lane> lanes_;
    // Both point into lanes_, whose nodes stay put until erased. A busy lane is erased only by
    // cancel(), after which no lane is touched.
    lane_ref cached_lane_{0, nullptr};    // the last lane deliver() found
    std::vector<lane_ref> worker_lanes_;  // by worker slot: the lane of its work
    std::deque<std::uint64_t> ready_;
    unsigned running_ = 0;
    bool closing_ = false;
    bool cancelled_ = false;
    bool fence_reported_ = false;
    std::unordered_map<partition_key, std::uint32_t> revoking_;       // the revoked generation
    std::unordered_map<partition_key, std::uint32_t> revoked_up_to_;  // never run these again
    std::unique_ptr<transaction_cycle> txn_;                          // exactly_once triggers only
    // Last, so destroyed first: parked workers are told to leave before anything else goes.
    worker_pool pool_;
};

}  // namespace kt::detail
