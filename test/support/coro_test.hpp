// Test helpers: run a coroutine body to completion from a test, and wait for outcomes.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

namespace kt_test {

/// Runs `body` on `executor` and blocks until it finishes (rethrowing its exception), or throws
/// after `timeout`. Lets tests read top to bottom with co_await.
template <typename Executor, typename Body>
void run_coro(const Executor& executor, Body body,
              std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto future = boost::asio::co_spawn(executor, std::move(body), boost::asio::use_future);
    if (future.wait_for(timeout) != std::future_status::ready)
        throw std::runtime_error("coroutine test body timed out");
    future.get();
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

}  // namespace kt_test
