// The state behind kt::producer: the client, its poll thread and a queue of blocking jobs.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <kt/producer.hpp>

#include "rdkafka_handles.hpp"

namespace kt {

struct producer::state {
    detail::client_ptr client;
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<bool> stopping{false};
    std::mutex jobs_mutex;
    std::deque<std::function<void()>> jobs;  // guarded by jobs_mutex
    std::thread poller;

    /// Runs `job` on the poll thread, where blocking librdkafka calls (transactions) belong.
    void post_job(std::function<void()> job);
    void poll_loop();
};

namespace detail {
struct producer_access {
    static producer::state& of(producer& p) { return *p.state_; }
    /// librdkafka's instance name, e.g. "rdkafka#producer-2".
    static std::string name(const producer& p);
    /// A transform handler's `out` for one handled message (see producer::producer(state, trace)).
    static producer view(producer& p, handling_trace& trace) { return producer(p.state_, trace); }
};
}  // namespace detail

}  // namespace kt
