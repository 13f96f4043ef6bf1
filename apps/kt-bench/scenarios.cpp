// Throughput scenarios: raw loop vs one trigger, N triggers shared vs not, isolation from a slow
// trigger, and key- vs partition-ordered concurrency with an async handler.
#include <algorithm>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/runtime.hpp>
#include <kt/trigger_host.hpp>

#include "bench.hpp"

namespace asio = boost::asio;

namespace kt_bench {

namespace {

/// Partitions of the throughput topics (the concurrency scenario uses one).
constexpr int partitions = 6;

/// One runtime and host per measured run; the host is destroyed first (it drains and commits).
struct host_under_test {
    host_under_test(const options& o, kt::host_options host_options = {})
        : runtime(runtime_of(o)), host(runtime, std::move(host_options)) {}
    kt::runtime runtime;
    kt::trigger_host host;
};

/// A no-op handler that only counts.
kt::handler counting(delivery_clock& clock) {
    return [&clock](const kt::message& m) -> asio::awaitable<void> {
        clock.record(m.partition());
        co_return;
    };
}

/// A handler that waits `duration` on an Asio timer (simulated I/O), then counts.
kt::handler sleeping(std::chrono::milliseconds duration, delivery_clock& clock) {
    return [duration, &clock](const kt::message& m) -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, duration);
        co_await timer.async_wait(asio::use_awaitable);
        clock.record(m.partition());
    };
}

/// Starts the host and waits for `clock`: the run's outcome.
consume_outcome run_until_counted(host_under_test& h, const delivery_clock& clock) {
    h.host.start();
    clock.wait(patience(clock.expected()));
    return {clock.seen(), clock.rate()};
}

/// Runs `ours` and `alternative` for `rounds` rounds, alternating which goes first so neither
/// always runs on a warmer cache. Each is called with the round number.
template <typename Ours, typename Alternative>
std::vector<rate_pair> alternate(unsigned rounds, Ours ours, Alternative alternative) {
    std::vector<rate_pair> pairs;
    for (unsigned round = 0; round < rounds; ++round) {
        rate_pair pair;
        if (round % 2 == 0) {
            pair.alternative = alternative(round);
            pair.ours = ours(round);
        } else {
            pair.ours = ours(round);
            pair.alternative = alternative(round);
        }
        pairs.push_back(pair);
    }
    return pairs;
}

long fanout_messages(const options& o) {
    return std::max(100L, o.messages / 10);
}

long concurrency_messages(const options& o) {
    return std::clamp(o.messages / 10, 1000L, 50000L);
}

const char* sharing_name(kt::sharing mode) {
    return mode == kt::sharing::off ? "off" : "per_group";
}

}  // namespace

baseline_result run_baseline(bench_cluster& cluster, const options& o, const progress_note& note) {
    baseline_result result{.messages = o.messages};
    note("baseline: producing");
    const auto topic = cluster.create_topic("baseline", partitions);
    cluster.fill(topic, o.messages);
    auto raw = [&](unsigned round) {
        note(fmt::format("baseline round {}: raw librdkafka loop", round + 1));
        const auto outcome =
            raw_consume({.config = cluster.consumer(cluster.unique(fmt::format("raw-{}", round))),
                         .topic = topic,
                         .partitions = partitions,
                         .expected = o.messages});
        result.raw_received = outcome.received;
        return outcome.rate;
    };
    auto trigger = [&](unsigned round) {
        note(fmt::format("baseline round {}: 1 no-op trigger", round + 1));
        delivery_clock clock(o.messages, partitions);
        host_under_test h(o);
        h.host.add_trigger(
            {.name = "noop",
             .topic = topic,
             .consumer = cluster.consumer(cluster.unique(fmt::format("kt-{}", round)))},
            counting(clock));
        const auto outcome = run_until_counted(h, clock);
        result.trigger_received = outcome.received;
        return outcome.rate;
    };
    result.rounds = alternate(o.rounds, trigger, raw);
    return result;
}

namespace {

fanout_run fan_out(bench_cluster& cluster, const options& o, const std::string& topic,
                   unsigned triggers, kt::sharing mode) {
    const long per_trigger = fanout_messages(o);
    fanout_run run{.triggers = triggers, .sharing = mode, .expected = per_trigger * triggers};
    release_free_memory();
    usage_sampler sampler;
    delivery_clock clock(run.expected, partitions);
    host_under_test h(o, {.sharing = mode});
    const auto group = cluster.unique(fmt::format("fanout-{}-{}", triggers, sharing_name(mode)));
    for (unsigned i = 0; i < triggers; ++i) {
        // Sharing off: a group per trigger, so each consumer reads every partition (as kt-host).
        const auto name = fmt::format("t{}", i);
        h.host.add_trigger(
            {.name = name,
             .topic = topic,
             .consumer = cluster.consumer(
                 mode == kt::sharing::off ? fmt::format("{}.{}", group, name) : group)},
            counting(clock));
    }
    const auto outcome = run_until_counted(h, clock);
    run.usage = sampler.finish();  // before the stop: closing is not steady state
    run.handled = outcome.received;
    run.deliveries_per_s = outcome.rate;
    run.consumers = h.host.consumer_count();
    return run;
}

}  // namespace

fanout_result run_fanout(bench_cluster& cluster, const options& o, const progress_note& note) {
    fanout_result result{.messages = fanout_messages(o)};
    note("fanout: producing");
    const auto topic = cluster.create_topic("fanout", partitions);
    cluster.fill(topic, result.messages);
    release_free_memory();
    {
        usage_sampler idle;
        std::this_thread::sleep_for(300ms);
        result.idle = idle.finish();
    }
    // All shared runs first: the separate consumers' heap, even trimmed, never inflates them.
    for (auto mode : {kt::sharing::per_group, kt::sharing::off}) {
        for (auto triggers : o.fanout_triggers) {
            note(fmt::format("fanout: {} triggers, sharing {}", triggers, sharing_name(mode)));
            result.runs.push_back(fan_out(cluster, o, topic, triggers, mode));
        }
    }
    return result;
}

namespace {

constexpr auto slow_handler_time = 100ms;

/// The fast trigger's rate, alone or beside a 100 ms trigger on another topic of its consumer.
double fast_trigger(bench_cluster& cluster, const options& o, const std::string& fast_topic,
                    const std::string& slow_topic, bool with_slow, unsigned round,
                    isolation_result& result) {
    // The slow trigger never finishes its backlog: do not wait the default 10 s for it.
    host_under_test h(o, {.drain_timeout = 200ms});
    const auto consumer = cluster.consumer(
        cluster.unique(fmt::format("isolation-{}-{}", with_slow ? "shared" : "alone", round)));
    delivery_clock fast(o.messages, partitions);
    std::atomic<long> slow_started{0};
    h.host.add_trigger({.name = "fast", .topic = fast_topic, .consumer = consumer}, counting(fast));
    if (with_slow)
        h.host.add_trigger({.name = "slow", .topic = slow_topic, .consumer = consumer},
                           [&slow_started](const kt::message&) -> asio::awaitable<void> {
                               slow_started.fetch_add(1, std::memory_order_relaxed);
                               asio::steady_timer timer(co_await asio::this_coro::executor,
                                                        slow_handler_time);
                               co_await timer.async_wait(asio::use_awaitable);
                           });
    const auto outcome = run_until_counted(h, fast);
    result.received = outcome.received;
    if (with_slow) result.slow_started = slow_started.load();
    return outcome.rate;
}

}  // namespace

isolation_result run_isolation(bench_cluster& cluster, const options& o,
                               const progress_note& note) {
    isolation_result result{.messages = o.messages};
    note("isolation: producing");
    const auto fast_topic = cluster.create_topic("fast", partitions);
    const auto slow_topic = cluster.create_topic("slow", partitions);
    cluster.fill(fast_topic, o.messages);
    // Far more than 100 ms handlers get through in a round: the slow topic never runs dry.
    cluster.fill(slow_topic, 6000);
    result.rounds = alternate(
        o.rounds,
        [&](unsigned round) {
            note(fmt::format("isolation round {}: beside a 100 ms trigger", round + 1));
            return fast_trigger(cluster, o, fast_topic, slow_topic, true, round, result);
        },
        [&](unsigned round) {
            note(fmt::format("isolation round {}: alone", round + 1));
            return fast_trigger(cluster, o, fast_topic, slow_topic, false, round, result);
        });
    return result;
}

namespace {

constexpr unsigned concurrency_in_flight = 256;
constexpr auto concurrency_handler_time = 10ms;

concurrency_run ordered(bench_cluster& cluster, const options& o, const std::string& topic,
                        kt::ordering ordering, const char* name, long messages) {
    delivery_clock clock(messages, 1);
    host_under_test h(o);
    h.host.add_trigger({.name = name,
                        .topic = topic,
                        .consumer = cluster.consumer(cluster.unique(fmt::format("order-{}", name))),
                        .ordering = ordering,
                        .max_in_flight = concurrency_in_flight},
                       sleeping(concurrency_handler_time, clock));
    const auto outcome = run_until_counted(h, clock);
    return {name, messages, outcome.received, outcome.rate};
}

}  // namespace

concurrency_result run_concurrency(bench_cluster& cluster, const options& o,
                                   const progress_note& note) {
    const long messages = concurrency_messages(o);
    // One message per 10 ms: a topic of its own, far shorter, is enough to see the rate.
    const long partition_messages = std::clamp(messages / 100, 20L, 200L);
    concurrency_result result{.max_in_flight = concurrency_in_flight,
                              .handler_time = concurrency_handler_time};
    note("concurrency: producing");
    const auto key_topic = cluster.create_topic("concurrency-key", 1);
    const auto partition_topic = cluster.create_topic("concurrency-partition", 1);
    cluster.fill(key_topic, messages, 1000);
    cluster.fill(partition_topic, partition_messages, 1000);
    note("concurrency: key-ordered");
    result.runs.push_back(ordered(cluster, o, key_topic, kt::ordering::key, "key", messages));
    note("concurrency: partition-ordered");
    result.runs.push_back(ordered(cluster, o, partition_topic, kt::ordering::partition, "partition",
                                  partition_messages));
    return result;
}

}  // namespace kt_bench
