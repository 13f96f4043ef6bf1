// kt::runtime: the shards (one thread and one io_context each) that run trigger handlers.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

namespace kt {

struct runtime_options {
    /// Number of shards; 0 means one per hardware thread.
    unsigned shards = 0;
    /// How long an idle shard keeps polling for work before its thread sleeps. 0 (the default)
    /// sleeps at once; a few hundred microseconds take the wake-up of a sleeping thread off the
    /// poll thread → handler hop, at the price of a busy core while messages trickle in
    /// (Seastar-style polling). Owned shards only.
    std::chrono::microseconds poll_before_sleep{0};
};

/// A Seastar-style set of shards. Each shard is one thread running its own io_context; state
/// owned by a shard is only touched on that shard's thread. Alternatively wraps an application's
/// own io_context as the single shard (integration into an existing async server), in which case
/// the application runs that io_context.
///
/// Thread-safety: shard()/shard_count() are safe from any thread; run_until_signal() is called
/// from one thread; request_stop() from any thread (including signal-free shutdown paths).
class runtime {
  public:
    explicit runtime(runtime_options options = {});
    /// Uses `application_context` as the one shard; no thread is started.
    explicit runtime(boost::asio::io_context& application_context);
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;
    /// Stops the shards and joins their threads (bounded: handlers still running are abandoned
    /// with their io_context).
    ~runtime();

    unsigned shard_count() const noexcept;
    /// Executor of shard `index` (`index < shard_count()`).
    boost::asio::any_io_executor shard(unsigned index) const;
    /// True when the calling thread is the thread of shard `index`.
    bool on_shard(unsigned index) const noexcept;

    /// Registers a coroutine to run (in registration order) when the runtime stops gracefully;
    /// trigger_host uses it to drain and commit. Call before run_until_signal().
    void on_stop(std::function<boost::asio::awaitable<void>()> hook);

    /// Blocks until SIGINT, SIGTERM or request_stop(), then runs the stop hooks and stops the
    /// shards. With an application io_context, runs that io_context on the calling thread.
    void run_until_signal();
    /// Asks run_until_signal() to begin the graceful stop. Thread-safe, idempotent.
    void request_stop();

  private:
    struct state;
    std::unique_ptr<state> state_;
};

/// Number of threads of this process right now (reads /proc/self/status).
unsigned process_thread_count();

}  // namespace kt
