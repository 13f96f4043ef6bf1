// Sleep and wake for the poll thread: woken by commands, shards' completions and librdkafka's
// queue events, from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace kt::detail {

class wakeup {
  public:
    /// Ends the current or next wait() early. Any thread, including librdkafka's.
    void wake() noexcept {
        {
            std::lock_guard lock(mutex_);
            pending_ = true;
        }
        cv_.notify_one();
    }
    /// Sleeps up to `timeout`, or not at all when woken since the last wait(). Poll thread.
    void wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, timeout, [this] { return pending_; });
        pending_ = false;
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool pending_ = false;
};

}  // namespace kt::detail
