// Isolation, side by side in one run: throughput of a no-op trigger alone vs the same trigger
// sharing its consumer with a slow trigger (100 ms handler) on another topic that always has a
// backlog. Rounds alternate; prints msgs/s of each and the median ratio (target ≥ 0.95).
// Usage: isolation_throughput [messages=200000] [rounds=3] [shards=2]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/kt.hpp>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

/// Messages/s of the fast trigger from its first message to its last (group join excluded).
double fast_trigger(const std::string& bootstrap, long total, unsigned shards, bool with_slow,
                    int round) {
    kt::runtime rt{{.shards = shards}};
    kt::trigger_host host{rt, {.drain_timeout = 200ms}};  // the slow trigger is never done
    const kt::consumer_config consumer{
        {"bootstrap.servers", bootstrap},
        {"group.id", fmt::format("isolation-{}-{}", with_slow ? "shared" : "alone", round)}};
    std::atomic<long> seen{0};
    std::atomic<std::int64_t> first_ns{0}, last_ns{0};
    host.add_trigger({.name = "fast", .topic = "fast", .consumer = consumer},
                     [&](const kt::message&) -> asio::awaitable<void> {
                         const auto now = steady::now().time_since_epoch().count();
                         const long n = seen.fetch_add(1, std::memory_order_relaxed) + 1;
                         if (n == 1) first_ns = now;
                         if (n == total) last_ns = now;
                         co_return;
                     });
    std::atomic<long> slow_handled{0};
    if (with_slow)
        host.add_trigger({.name = "slow", .topic = "slow", .consumer = consumer},
                         [&](const kt::message&) -> asio::awaitable<void> {
                             asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
                             co_await timer.async_wait(asio::use_awaitable);
                             slow_handled.fetch_add(1, std::memory_order_relaxed);
                         });
    host.start();
    while (last_ns.load() == 0) std::this_thread::sleep_for(5ms);
    if (with_slow && (host.consumer_count() != 1 || slow_handled.load() == 0))
        std::fprintf(stderr,
                     "warning: the slow trigger did not run alongside (%zu consumers, "
                     "%ld slow messages handled)\n",
                     host.consumer_count(), slow_handled.load());
    return static_cast<double>(total - 1) / (static_cast<double>(last_ns - first_ns) * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
    const long total = argc > 1 ? std::atol(argv[1]) : 200000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const unsigned shards = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 2;
    kt::set_log_level(kt::log_level::warning);
    kt::embedded_cluster cluster{{.brokers = 3}};
    cluster.create_topic("fast", 6);
    cluster.create_topic("slow", 6);
    {
        kt::producer producer({{"bootstrap.servers", cluster.bootstrap()}, {"linger.ms", "5"}});
        const std::string value(100, 'v');
        for (long i = 0; i < total; ++i)
            producer.produce("fast", fmt::format("key-{}", i % 1000), value);
        // Far more than 100 ms handlers get through in a round: the slow topic never runs dry.
        for (long i = 0; i < 6000; ++i)
            producer.produce("slow", fmt::format("key-{}", i % 1000), value);
        producer.flush(60s);
    }
    std::vector<double> ratios;
    for (int round = 0; round < rounds; ++round) {
        // Alternate the order so neither side always runs on a warmer cache.
        const bool slow_first = round % 2 == 1;
        const double first = fast_trigger(cluster.bootstrap(), total, shards, slow_first, round);
        const double second = fast_trigger(cluster.bootstrap(), total, shards, !slow_first, round);
        const double alone = slow_first ? second : first, shared = slow_first ? first : second;
        ratios.push_back(shared / alone);
        std::printf(
            "round %d: fast alone %9.0f msgs/s, with a 100 ms trigger on its consumer "
            "%9.0f msgs/s, ratio %.3f\n",
            round + 1, alone, shared, shared / alone);
    }
    std::sort(ratios.begin(), ratios.end());
    std::printf("median ratio (with / alone): %.3f over %d rounds (%u shards)\n",
                ratios[ratios.size() / 2], rounds, shards);
}
