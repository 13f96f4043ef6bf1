// The two lock-free rings between one shared consumer's poll thread and one shard, and their
// whole protocol: overflow behind a full ring, one wake-up per burst, closing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include <kt/channel.hpp>
#include <kt/message.hpp>

#include "message_data.hpp"

namespace kt::detail {

class trigger_state;

/// Every trigger on a topic, when each of them receives each of its messages: one ring item hands
/// a message to all of them (at 100 triggers, an item per trigger and message filled the ring and
/// the caches). Shared by the items that carry it and the router; the last to let go frees it.
class fanout_list {
  public:
    explicit fanout_list(std::vector<trigger_state*> triggers) : triggers_(std::move(triggers)) {}
    const std::vector<trigger_state*>& triggers() const noexcept { return triggers_; }
    /// One more reference, for a ring item (poll thread).
    fanout_list* share() noexcept {
        references_.fetch_add(1, std::memory_order_relaxed);
        return this;
    }
    /// Drops one reference (any thread).
    static void release(fanout_list* list) noexcept {
        if (list->references_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete list;
    }
    struct releaser {
        void operator()(fanout_list* list) const noexcept { release(list); }
    };

  private:
    const std::vector<trigger_state*> triggers_;
    std::atomic<std::uint32_t> references_{1};
};
using fanout_owner = std::unique_ptr<fanout_list, fanout_list::releaser>;

/// Poll thread → shard: deliver a message to one trigger or to every trigger of a fanout_list,
/// fence a trigger being removed, revoke a partition (drop its queued messages, report when its
/// handlers are done), cancel the handlers still running on a revoked partition, or cancel all of
/// a trigger's work (a stop past its drain deadline).
struct shard_item {
    enum class kind : std::uint8_t {
        deliver,
        deliver_all,
        fence,
        revoke,
        cancel_partition,
        cancel_all
    };
    kind what;
    trigger_state* trigger;
    message_data* message = nullptr;   // deliver: one adopted reference; deliver_all: one each
    std::int32_t partition = 0;        // revoke, cancel_partition
    std::uint32_t generation = 0;      // revoke: messages of this generation or older are dropped
    std::uint32_t topic_id = 0;        // revoke, cancel_partition: the partition's topic
    fanout_list* receivers = nullptr;  // deliver_all: one adopted reference
};

/// Shard → poll thread: handlers finished (`done`: every message of the partition the trigger
/// was handed in [first, offset], one run finished in delivery order, or one message when
/// first == offset), a trigger's runner drained after its fence, or no handler of a revoked
/// partition runs any more on this shard.
struct completion {
    enum class kind : std::uint8_t { done, fence_done, revoke_done };
    kind what;
    std::uint32_t trigger_id;
    std::uint32_t topic_id;
    std::uint32_t generation;
    std::int32_t partition;
    std::int64_t offset;
    std::int64_t first = offset;
};

/// One per (shared consumer, shard), the only way between the two: `to_shard` is produced by
/// the poll thread and consumed by the shard's reader coroutine, completions go the other way.
/// Each side owns the overflow behind the ring it produces to, used only while that ring is
/// momentarily full (bounded by partition pausing). Members say which thread calls them.
class shard_link : public std::enable_shared_from_this<shard_link> {
  public:
    shard_link(std::size_t capacity, boost::asio::any_io_executor shard_executor)
        : to_shard_(capacity, shard_executor), to_poll_(capacity), retry_timer_(shard_executor) {}

    // ---- poll thread ---------------------------------------------------------------------
    /// Queues `item` for the shard, in order (behind any overflow). Dropped once the poll side
    /// closed: the runners are drained or cancelled and may be destroyed.
    void push(const shard_item& item) {
        if (poll_side_closed()) return;
        if (!pending_.empty() || !to_shard_.try_push(item)) pending_.push_back(item);
        dirty_ = true;
    }
    /// Moves overflow into the ring as far as it has room.
    void flush() {
        while (!pending_.empty() && to_shard_.try_push(pending_.front())) {
            pending_.pop_front();
            dirty_ = true;
        }
    }
    /// Wakes the shard's reader once for everything pushed since the last notify().
    void notify() {
        if (!dirty_) return;
        dirty_ = false;
        to_shard_.notify();
    }
    /// Items wait behind a full ring.
    bool backed_up() const noexcept { return !pending_.empty(); }
    /// Passes every completion that arrived to `f`.
    template <typename F>
    void drain_completions(F&& f) {
        to_poll_.consume_all(f);
    }
    /// Drops the deliveries still in the overflow (their references go): the shard will not read
    /// them. Control items stay, unless the poll side is closed (then nothing is read any more).
    void drop_pending_deliveries() {
        auto delivers = [](const shard_item& item) {
            return item.what == shard_item::kind::deliver ||
                   item.what == shard_item::kind::deliver_all;
        };
        for (auto& item : pending_) {
            if (item.what == shard_item::kind::deliver) release_reference(item.message);
            if (item.what != shard_item::kind::deliver_all) continue;
            for (std::size_t i = 0; i < item.receivers->triggers().size(); ++i)
                release_reference(item.message);
            fanout_list::release(item.receivers);
        }
        if (poll_side_closed())
            pending_.clear();
        else
            std::erase_if(pending_, delivers);
    }
    /// The poll thread reads no completions and sends nothing more; the reader ends once it has
    /// drained the ring.
    void close_poll_side() {
        poll_side_gone_.store(true, std::memory_order_release);
        to_shard_.close();
    }
    bool poll_side_closed() const noexcept {
        return poll_side_gone_.load(std::memory_order_acquire);
    }

    // ---- shard thread --------------------------------------------------------------------
    /// Queues a completion for the poll thread; never blocks (a full ring is retried every ms).
    void push_completion(const completion& c) {
        if (poll_side_closed()) return;
        if (overflow_.empty() && to_poll_.push(c)) return;
        overflow_.push_back(c);
        schedule_retry();
    }
    /// The reader's side of `to_shard`.
    spsc_channel<shard_item>& from_poll() noexcept { return to_shard_; }

  private:
    /// Drops the adopted reference of a delivery that will never be read.
    static void release_reference(message_data* data) { message{data}; }

    void schedule_retry() {
        if (retry_scheduled_) return;
        retry_scheduled_ = true;
        retry_timer_.expires_after(std::chrono::milliseconds(1));
        // The handler owns the link, so the link outlives its timer's pending wait.
        retry_timer_.async_wait([self = shared_from_this(), this](boost::system::error_code) {
            retry_scheduled_ = false;
            while (!overflow_.empty() && to_poll_.push(overflow_.front())) overflow_.pop_front();
            if (!overflow_.empty() && !poll_side_closed()) schedule_retry();
        });
    }

    spsc_channel<shard_item> to_shard_;
    boost::lockfree::spsc_queue<completion> to_poll_;
    std::atomic<bool> poll_side_gone_{false};
    std::deque<shard_item> pending_;   // poll thread
    bool dirty_ = false;               // poll thread: pushed since the last notify()
    std::deque<completion> overflow_;  // shard thread
    boost::asio::steady_timer retry_timer_;
    bool retry_scheduled_ = false;
};

/// Moves every link's overflow into its ring as far as there is room, then wakes each shard once.
/// Poll thread.
inline void flush_and_notify(const std::vector<std::shared_ptr<shard_link>>& links) {
    for (const auto& link : links) link->flush();
    for (const auto& link : links) link->notify();
}

}  // namespace kt::detail
