// One runner's long-lived work coroutines: their slots, the parked ones, waking and retiring
// them, and the keepalive that holds the trigger while work runs. Shard thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include "shard/partition_key.hpp"
#include "shard/trigger_state.hpp"

namespace kt::detail {

class worker_pool;

/// Keeps a trigger alive while work runs on one shard. Copies are counted by the pool without
/// atomics (they are made and dropped on its shard) and only the first holds the trigger's
/// shared_ptr: one shared count per busy period instead of several per message, so the count no
/// longer bounces between the cores of two busy shards. Shard thread only.
class shard_keepalive {
  public:
    explicit shard_keepalive(worker_pool& pool) noexcept;
    shard_keepalive(const shard_keepalive& other) noexcept;
    shard_keepalive(shard_keepalive&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)) {}
    shard_keepalive& operator=(const shard_keepalive&) = delete;
    shard_keepalive& operator=(shard_keepalive&&) = delete;
    ~shard_keepalive();

  private:
    worker_pool* pool_;
};

/// Workers by slot; parked ones are woken before new ones are spawned, so starting work usually
/// costs one post instead of a coroutine.
class worker_pool {
  public:
    /// A long-lived work coroutine: it runs work, then parks until it is handed more. Shared by
    /// the pool and the coroutine, so its cancellation signal lives as long as either.
    struct worker {
        boost::asio::cancellation_signal signal;
        partition_key partition = 0;
        bool active = false;  // running work: cancellations reach it
        /// Set while parked; resumes it with true (work in `handoff`) or false (leave).
        std::optional<boost::asio::any_completion_handler<void(bool)>> parked;
        work_items handoff;
        std::optional<shard_keepalive> handoff_keep;
    };

    worker_pool(trigger_state& owner, boost::asio::any_io_executor shard)
        : owner_(owner), shard_(std::move(shard)) {}
    /// Parked workers hold no keepalive, so the pool can go while they wait: tells them to leave.
    ~worker_pool() { retire_parked(); }
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    /// Hands `work` of `partition` to a parked worker and wakes it: its slot; nullopt when none is
    /// parked (`work` is left as it was).
    std::optional<std::uint32_t> hand_to_parked(partition_key partition, work_items& work);
    /// Slot of a new worker, running work of `partition` (or of transactional work).
    std::uint32_t add(partition_key partition);
    const std::shared_ptr<worker>& at(std::uint32_t slot) const { return runs_[slot]; }
    /// The worker in `slot` went on to work of `partition`.
    void moved_to(std::uint32_t slot, partition_key partition) {
        runs_[slot]->partition = partition;
    }
    /// Parks the worker in `slot` until it is handed work (true, `keep` taken again) or told to
    /// leave (false; the pool may be gone by then). `keep` is released while parked, so parked
    /// workers never keep the trigger alive.
    boost::asio::awaitable<bool> park(std::uint32_t slot, std::optional<shard_keepalive>& keep);
    /// The worker in `slot` ends (it still holds a keepalive).
    void exits(std::uint32_t slot);
    /// Tells every parked worker to leave (removal, cancellation, destruction).
    void retire_parked();
    /// The host stopped: parked workers leave and no worker parks again. A parked worker holds
    /// outstanding work on its io_context, which would otherwise never run out of work.
    void retire() {
        retired_ = true;
        retire_parked();
    }
    bool retired() const noexcept { return retired_; }
    /// Cancels the running work of `partition`.
    void cancel_partition(partition_key partition);
    /// Cancels all running work.
    void cancel_all();

  private:
    friend class shard_keepalive;
    /// Resumes the parked worker `w`: with the work in its `handoff`, or to leave.
    void wake(worker& w, bool with_work);

    trigger_state& owner_;
    boost::asio::any_io_executor shard_;
    unsigned keepalives_ = 0;
    std::shared_ptr<trigger_state> kept_;        // set while keepalives_ > 0
    std::vector<std::shared_ptr<worker>> runs_;  // null: free
    std::vector<std::uint32_t> free_runs_;
    std::vector<std::uint32_t> parked_;
    bool retired_ = false;
};

}  // namespace kt::detail
