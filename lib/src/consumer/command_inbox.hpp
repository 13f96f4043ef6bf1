// Any thread -> poll thread: the control plane (attach, detach, commit, stop), never messages.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace kt::detail {

/// Commands (of type `Command`) queued for the poll thread. Once closed it refuses new ones and
/// hands them back, so the caller can complete their waiters at once.
template <typename Command>
class command_inbox {
  public:
    /// Queues `c`; hands it back when the inbox is closed. Any thread.
    [[nodiscard]] std::optional<Command> post(Command c) {
        std::lock_guard lock(mutex_);
        if (closed_) return std::optional<Command>(std::move(c));
        commands_.push_back(std::move(c));
        waiting_.store(true, std::memory_order_release);
        return std::nullopt;
    }

    /// Something waits: a lock-free check for every turn of the poll thread.
    bool waiting() const noexcept { return waiting_.load(std::memory_order_acquire); }

    /// Everything queued, in order. Poll thread.
    std::vector<Command> take() {
        std::vector<Command> batch;
        std::lock_guard lock(mutex_);
        batch.swap(commands_);
        waiting_.store(false, std::memory_order_relaxed);
        return batch;
    }

    /// Refuses every later post() and returns what is still queued (to reject, or to drop).
    std::vector<Command> close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        waiting_.store(false, std::memory_order_relaxed);
        return std::exchange(commands_, {});
    }

  private:
    std::mutex mutex_;
    std::vector<Command> commands_;
    bool closed_ = false;
    std::atomic<bool> waiting_{false};
};

}  // namespace kt::detail
