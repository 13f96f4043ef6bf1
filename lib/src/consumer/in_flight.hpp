// A count of things in flight (messages handed out, listeners running) and a bounded wait for
// none: Seastar's gate, for a thread that must keep working while it waits.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kt::detail {

/// enter()/leave() from any thread; wait_idle() from the one thread that waits.
class in_flight {
  public:
    using clock = std::chrono::steady_clock;

    void enter(std::int64_t n = 1) noexcept { count_.fetch_add(n, std::memory_order_relaxed); }
    /// Release: what the leaver did happens before a waiter sees the count drop.
    void leave() noexcept { count_.fetch_sub(1, std::memory_order_release); }
    std::int64_t count() const noexcept { return count_.load(std::memory_order_acquire); }
    bool idle() const noexcept { return count() <= 0; }

    /// Until nothing is in flight or `deadline`, calls `turn()` (which does what lets the rest
    /// finish and sleeps a little); true when nothing is in flight.
    template <typename Turn>
    bool wait_idle(clock::time_point deadline, Turn&& turn) {
        while (!idle() && clock::now() < deadline) turn();
        return idle();
    }

  private:
    std::atomic<std::int64_t> count_{0};
};

}  // namespace kt::detail
