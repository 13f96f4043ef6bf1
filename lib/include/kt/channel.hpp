// kt::spsc_channel: bounded lock-free single-producer/single-consumer ring with an awaitable
// consumer side. The producer never blocks and never waits on the consumer.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/post.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <boost/system/error_code.hpp>

namespace kt {

/// Bounded SPSC ring (boost::lockfree::spsc_queue) plus a parked-consumer slot.
///
/// Thread-safety: exactly one producer thread calls try_push()/notify()/close(); exactly one
/// consumer calls try_pop()/consume_all()/async_wait(). The consumer is woken only when it is
/// parked, i.e. once per burst on the empty→non-empty edge, never once per element.
/// `T` must be trivially copyable (items are plain routing records).
template <typename T>
class spsc_channel {
  public:
    using wait_signature = void(boost::system::error_code);

    spsc_channel(std::size_t capacity, boost::asio::any_io_executor consumer_executor)
        : queue_(capacity), consumer_executor_(std::move(consumer_executor)) {}
    spsc_channel(const spsc_channel&) = delete;
    spsc_channel& operator=(const spsc_channel&) = delete;

    // ---- producer side -------------------------------------------------------------------
    /// Appends `item`; false when the ring is full (the producer keeps it and retries later).
    /// Call notify() after a burst of pushes.
    bool try_push(const T& item) noexcept { return queue_.push(item); }

    /// Wakes the consumer if it is parked. One call per burst of try_push().
    void notify() noexcept {
        // Pairs with the fence in start_wait(): either we see parked_, or the consumer sees our
        // pushes when it re-checks the ring after parking (no lost wake-up).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (parked_.load(std::memory_order_relaxed) &&
            parked_.exchange(false, std::memory_order_acq_rel))
            resume_waiter();
    }

    /// Pushes and wakes: the simple path for single items.
    bool push(const T& item) noexcept {
        if (!try_push(item)) return false;
        notify();
        return true;
    }

    /// Closes the channel: a parked or future wait completes with `channel_closed` once the ring
    /// is drained. Items already pushed can still be popped.
    void close() noexcept {
        closed_.store(true, std::memory_order_release);
        notify();
    }

    // ---- consumer side -------------------------------------------------------------------
    bool try_pop(T& out) noexcept { return queue_.pop(out); }

    /// Pops every available item into `f`; returns how many.
    template <typename F>
    std::size_t consume_all(F&& f) {
        return queue_.consume_all(std::forward<F>(f));
    }

    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    std::size_t size_approx() const noexcept { return queue_.read_available(); }

    /// Completes (on the waiter's associated executor, never inline) when an item is available,
    /// or with `boost::asio::experimental::error::channel_closed` when closed and drained.
    template <typename Token>
    auto async_wait(Token&& token) {
        return boost::asio::async_initiate<Token, wait_signature>(
            [this](auto waiter) {
                auto ex = boost::asio::get_associated_executor(waiter, consumer_executor_);
                start_wait(boost::asio::any_completion_handler<wait_signature>(std::move(waiter)),
                           std::move(ex));
            },
            token);
    }

  private:
    bool ready() const noexcept { return queue_.read_available() > 0 || closed(); }

    void start_wait(boost::asio::any_completion_handler<wait_signature> waiter,
                    boost::asio::any_io_executor ex) {
        waiter_.emplace(std::move(waiter));
        waiter_executor_ = std::move(ex);
        parked_.store(true, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // Re-check after parking: the producer may have pushed before it could see parked_.
        if (ready() && parked_.exchange(false, std::memory_order_acq_rel)) resume_waiter();
    }

    void resume_waiter() noexcept {
        auto waiter = std::move(*waiter_);
        waiter_.reset();
        auto ex = std::move(waiter_executor_);
        boost::system::error_code ec;
        if (queue_.read_available() == 0 && closed())
            ec = boost::asio::experimental::error::channel_closed;
        boost::asio::post(ex,
                          [waiter = std::move(waiter), ec]() mutable { std::move(waiter)(ec); });
    }

    boost::lockfree::spsc_queue<T> queue_;
    boost::asio::any_io_executor consumer_executor_;
    std::atomic<bool> closed_{false};
    std::atomic<bool> parked_{false};
    // Owned by the consumer until parked_ is published, then by whoever resets parked_.
    // std::optional + emplace: Boost 1.81's any_completion_handler move-assignment recurses.
    std::optional<boost::asio::any_completion_handler<wait_signature>> waiter_;
    boost::asio::any_io_executor waiter_executor_;
};

}  // namespace kt
