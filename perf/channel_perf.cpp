// Channel micro-benchmarks: kt::spsc_channel vs the bare spsc_queue vs a mutex+deque, and the
// cross-thread hop (push on one thread → coroutine resumed on an io_context thread).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/channel.hpp>

namespace asio = boost::asio;

struct item {
    void* trigger;
    void* message;
    std::uint64_t tag;
};

// Same-thread push then pop of a batch: the per-message cost of the ring itself.
static void channel_push_pop_batch(benchmark::State& state) {
    asio::io_context ctx;
    kt::spsc_channel<item> channel(8192, ctx.get_executor());
    const auto batch = state.range(0);
    for (auto _ : state) {
        for (std::int64_t i = 0; i < batch; ++i)
            channel.try_push({nullptr, nullptr, std::uint64_t(i)});
        channel.notify();
        std::uint64_t sum = 0;
        channel.consume_all([&](const item& it) { sum += it.tag; });
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(channel_push_pop_batch)->Arg(1)->Arg(16)->Arg(256)->Arg(4096);

static void spsc_queue_push_pop_batch(benchmark::State& state) {
    boost::lockfree::spsc_queue<item> queue(8192);
    const auto batch = state.range(0);
    for (auto _ : state) {
        for (std::int64_t i = 0; i < batch; ++i) queue.push({nullptr, nullptr, std::uint64_t(i)});
        std::uint64_t sum = 0;
        queue.consume_all([&](const item& it) { sum += it.tag; });
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(spsc_queue_push_pop_batch)->Arg(1)->Arg(16)->Arg(256)->Arg(4096);

static void mutex_deque_push_pop_batch(benchmark::State& state) {
    std::mutex mutex;
    std::deque<item> queue;
    const auto batch = state.range(0);
    for (auto _ : state) {
        for (std::int64_t i = 0; i < batch; ++i) {
            std::lock_guard lock(mutex);
            queue.push_back({nullptr, nullptr, std::uint64_t(i)});
        }
        std::uint64_t sum = 0;
        std::lock_guard lock(mutex);
        for (const auto& it : queue) sum += it.tag;
        queue.clear();
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(mutex_deque_push_pop_batch)->Arg(1)->Arg(16)->Arg(256)->Arg(4096);

// Cross-thread streaming: a producer thread pushes `items` messages in bursts of range(0); a
// coroutine on an io_context thread consumes them. Reports messages/s end to end.
static void channel_cross_thread_stream(benchmark::State& state) {
    const auto burst = state.range(0);
    constexpr std::int64_t items = 1 << 20;
    for (auto _ : state) {
        asio::io_context ctx;
        kt::spsc_channel<item> channel(8192, ctx.get_executor());
        std::int64_t received = 0;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                for (;;) {
                    received += static_cast<std::int64_t>(channel.consume_all([](const item&) {}));
                    auto [ec] = co_await channel.async_wait(asio::as_tuple(asio::use_awaitable));
                    if (ec) {
                        received +=
                            static_cast<std::int64_t>(channel.consume_all([](const item&) {}));
                        co_return;
                    }
                }
            },
            asio::detached);
        std::thread consumer([&] { ctx.run(); });
        for (std::int64_t sent = 0; sent < items;) {
            for (std::int64_t i = 0; i < burst && sent < items;)
                if (channel.try_push({nullptr, nullptr, std::uint64_t(sent)}))
                    ++sent, ++i;
                else
                    channel.notify();
            channel.notify();
        }
        channel.close();
        consumer.join();
        if (received != items) state.SkipWithError("lost messages");
    }
    state.SetItemsProcessed(state.iterations() * items);
}
BENCHMARK(channel_cross_thread_stream)
    ->Arg(1)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The hop alone: push one item while the consumer is parked, measure until the coroutine runs.
// Paced (one message every 100 µs, i.e. 10k msg/s) so each message finds the consumer parked.
static void channel_hop_latency(benchmark::State& state) {
    asio::io_context ctx;
    auto guard = asio::make_work_guard(ctx);
    kt::spsc_channel<std::int64_t> channel(1024, ctx.get_executor());
    std::atomic<std::int64_t> resumed_at{0};
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec] = co_await channel.async_wait(asio::as_tuple(asio::use_awaitable));
                const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
                std::int64_t v;
                while (channel.try_pop(v)) {
                }
                resumed_at.store(now, std::memory_order_release);
                if (ec) co_return;
            }
        },
        asio::detached);
    std::thread consumer([&] { ctx.run(); });
    std::vector<double> samples;
    for (auto _ : state) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        resumed_at.store(0, std::memory_order_relaxed);
        const auto pushed = std::chrono::steady_clock::now().time_since_epoch().count();
        channel.push(pushed);
        std::int64_t done;
        while ((done = resumed_at.load(std::memory_order_acquire)) == 0) {
        }
        const double hop_ns = static_cast<double>(done - pushed);
        samples.push_back(hop_ns);
        state.SetIterationTime(hop_ns * 1e-9);
    }
    channel.close();
    guard.reset();
    consumer.join();
    std::sort(samples.begin(), samples.end());
    auto pct = [&](double p) {
        return samples[static_cast<std::size_t>(p * (samples.size() - 1))] / 1000.0;
    };
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
}
BENCHMARK(channel_hop_latency)->UseManualTime()->Iterations(5000)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
