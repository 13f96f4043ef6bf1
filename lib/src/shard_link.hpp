// The two lock-free rings between one shared consumer's poll thread and one shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include <boost/asio/steady_timer.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include <kt/channel.hpp>

#include "message_data.hpp"

namespace kt::detail {

class trigger_state;

/// Poll thread → shard: deliver a message to one trigger, fence a trigger being removed, revoke
/// a partition (drop its queued messages, report when its handlers are done), or cancel the
/// handlers still running on a revoked partition.
struct shard_item {
    enum class kind : std::uint8_t { deliver, fence, revoke, cancel_partition };
    kind what;
    trigger_state* trigger;
    message_data* message = nullptr;  // one adopted reference (deliver only)
    std::int32_t partition = 0;       // revoke, cancel_partition
    std::uint32_t generation = 0;     // revoke: messages of this generation or older are dropped
    std::uint32_t topic_id = 0;       // revoke: the partition's topic, echoed in revoke_done
};

/// Shard → poll thread: a handler finished, a trigger's runner drained after its fence, or no
/// handler of a revoked partition runs any more on this shard.
struct completion {
    enum class kind : std::uint8_t { done, fence_done, revoke_done };
    kind what;
    std::uint32_t trigger_id;
    std::uint32_t topic_id;
    std::uint32_t generation;
    std::int32_t partition;
    std::int64_t offset;
};

/// One per (shared consumer, shard). `to_shard` is produced by the poll thread and consumed by the
/// shard's reader coroutine; `to_poll` the other way round. Overflow deques are owned by the
/// producing side and only used when a ring is momentarily full (bounded by partition pausing).
class shard_link : public std::enable_shared_from_this<shard_link> {
  public:
    shard_link(std::size_t capacity, boost::asio::any_io_executor shard_executor)
        : to_shard(capacity, shard_executor), to_poll(capacity), retry_timer_(shard_executor) {}

    // ---- shard side ----
    /// Queues a completion for the poll thread; never blocks.
    void push_completion(const completion& c) {
        if (poll_side_gone.load(std::memory_order_acquire)) return;
        if (overflow_.empty() && to_poll.push(c)) return;
        overflow_.push_back(c);
        schedule_retry();
    }

    spsc_channel<shard_item> to_shard;
    boost::lockfree::spsc_queue<completion> to_poll;
    /// Set by the poll thread once it no longer reads completions (consumer closed).
    std::atomic<bool> poll_side_gone{false};
    /// Poll-thread-owned: items that did not fit in `to_shard`.
    std::deque<shard_item> pending_to_shard;

  private:
    void schedule_retry() {
        if (retry_scheduled_) return;
        retry_scheduled_ = true;
        retry_timer_.expires_after(std::chrono::milliseconds(1));
        // The handler owns the link, so the link outlives its timer's pending wait.
        retry_timer_.async_wait([self = shared_from_this(), this](boost::system::error_code) {
            retry_scheduled_ = false;
            while (!overflow_.empty() && to_poll.push(overflow_.front())) overflow_.pop_front();
            if (!overflow_.empty() && !poll_side_gone.load(std::memory_order_acquire))
                schedule_retry();
        });
    }

    std::deque<completion> overflow_;  // shard-owned
    boost::asio::steady_timer retry_timer_;
    bool retry_scheduled_ = false;
};

}  // namespace kt::detail
