// Shards (thread + io_context each) and the signal-driven graceful stop.
#include <kt/runtime.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log.hpp"

namespace asio = boost::asio;

namespace kt {
namespace {

/// Runs a shard's io_context; with `poll_for` > 0 it polls that long for new work before the
/// thread sleeps in run_one().
void run_shard(asio::io_context& context, std::chrono::microseconds poll_for) {
    if (poll_for.count() <= 0) {
        context.run();
        return;
    }
    using clock = std::chrono::steady_clock;
    while (!context.stopped()) {
        bool found = false;
        for (const auto until = clock::now() + poll_for; !found && clock::now() < until;)
            found = context.poll() > 0;
        if (!found) context.run_one();  // sleeps until the next handler
    }
}

/// An io_context whose pending handlers can be destroyed before any shard's context is: one of
/// them may hold the last reference to a trigger whose runners still post to the other shards.
class shard_context : public asio::io_context {
  public:
    using asio::io_context::io_context;
    void abandon_pending() { shutdown(); }  // destruction shuts down again, harmlessly
};

}  // namespace

struct runtime::state {
    using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;

    std::vector<std::unique_ptr<shard_context>> owned_contexts;
    std::vector<asio::io_context*> contexts;
    std::vector<work_guard> guards;
    std::vector<std::thread> threads;
    asio::io_context* control = nullptr;  // where signals and stop hooks run
    std::optional<asio::io_context> own_control;

    std::mutex hooks_mutex;
    std::vector<std::function<asio::awaitable<void>()>> hooks;
    std::atomic<bool> stop_requested{false};
    asio::signal_set* signals = nullptr;  // touched only on the control context

    void join_shards() {
        guards.clear();
        for (auto& thread : threads)
            if (thread.joinable()) thread.join();
        threads.clear();
    }

    asio::awaitable<void> wait_and_stop() {
        asio::signal_set signal_set(*control, SIGINT, SIGTERM);
        signals = &signal_set;
        if (!stop_requested.load()) {
            auto [ec, number] = co_await signal_set.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!ec)
                detail::log(log_level::info, "signal {} received: stopping gracefully", number);
        }
        signals = nullptr;
        std::vector<std::function<asio::awaitable<void>()>> to_run;
        {
            std::lock_guard lock(hooks_mutex);
            to_run = hooks;
        }
        for (auto& hook : to_run) {
            try {
                co_await hook();
            } catch (const std::exception& e) {
                detail::log(log_level::error, "stop hook failed: {}", e.what());
            }
        }
    }
};

runtime::runtime(runtime_options options) : state_(std::make_unique<state>()) {
    unsigned count =
        options.shards ? options.shards : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < count; ++i) {
        state_->owned_contexts.push_back(std::make_unique<shard_context>(1));
        state_->contexts.push_back(state_->owned_contexts.back().get());
        state_->guards.emplace_back(state_->contexts.back()->get_executor());
    }
    for (unsigned i = 0; i < count; ++i) {
        state_->threads.emplace_back(
            [ctx = state_->contexts[i], i, poll = options.poll_before_sleep] {
                detail::name_this_thread(fmt::format("kt-shard-{}", i));
                try {
                    run_shard(*ctx, poll);
                } catch (const std::exception& e) {
                    detail::log(log_level::error, "shard {} stopped by exception: {}", i, e.what());
                }
            });
    }
    state_->own_control.emplace(1);
    state_->control = &*state_->own_control;
}

runtime::runtime(asio::io_context& application_context) : state_(std::make_unique<state>()) {
    state_->contexts.push_back(&application_context);
    state_->control = &application_context;
}

runtime::~runtime() {
    if (!state_->threads.empty()) {
        for (auto* ctx : state_->contexts) ctx->stop();
        state_->join_shards();
    }
    for (auto& context : state_->owned_contexts) context->abandon_pending();
}

unsigned runtime::shard_count() const noexcept {
    return static_cast<unsigned>(state_->contexts.size());
}

asio::any_io_executor runtime::shard(unsigned index) const {
    return state_->contexts.at(index)->get_executor();
}

bool runtime::on_shard(unsigned index) const noexcept {
    return state_->contexts[index]->get_executor().running_in_this_thread();
}

void runtime::on_stop(std::function<asio::awaitable<void>()> hook) {
    std::lock_guard lock(state_->hooks_mutex);
    state_->hooks.push_back(std::move(hook));
}

void runtime::request_stop() {
    state_->stop_requested.store(true);
    asio::post(*state_->control, [s = state_.get()] {
        if (s->signals) s->signals->cancel();
    });
}

void runtime::run_until_signal() {
    auto& control = *state_->control;
    const bool external = state_->threads.empty();
    asio::co_spawn(control, state_->wait_and_stop(), [&control, external](std::exception_ptr) {
        // An application io_context may hold other work (servers); stop it explicitly.
        if (external) control.stop();
    });
    control.run();
    control.restart();
    if (!external) state_->join_shards();
}

unsigned process_thread_count() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("Threads:", 0) == 0)
            return static_cast<unsigned>(std::stoul(line.substr(8)));
    return 0;
}

}  // namespace kt
