// Latency scenarios: produce → handler start at a fixed rate (raw librdkafka loop vs a trigger),
// and the channel hop alone (push → coroutine on a shard resumed).
#include <algorithm>
#include <charconv>
#include <future>
#include <mutex>
#include <tuple>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/channel.hpp>
#include <kt/producer.hpp>
#include <kt/runtime.hpp>
#include <kt/trigger_host.hpp>

#include "bench.hpp"

namespace asio = boost::asio;

namespace kt_bench {

namespace {

constexpr std::string_view warm_up_value = "warm-up";
constexpr double hop_rate = 10000;

std::int64_t now_ns() noexcept {
    return std::chrono::steady_clock::now().time_since_epoch().count();
}

/// Ticks at a fixed rate from its construction.
class pacer {
  public:
    explicit pacer(double rate) : interval_(1.0 / rate) {}
    /// Sleeps until tick `i`.
    void wait_for(long i) const {
        std::this_thread::sleep_until(
            start_ +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(i * interval_));
    }

  private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::duration<double> interval_;
};

/// Produce → arrival latencies of values that carry their send time (steady_clock, this
/// process); warm-up values only show that the consumer is fetching.
class latency_probe {
  public:
    explicit latency_probe(long expected) : clock_(expected, 1) {
        micros_.reserve(static_cast<std::size_t>(expected));
    }

    static std::string stamp() { return fmt::format("{:<100}", now_ns()); }

    /// Records `value`'s latency; false for a warm-up value. Any thread.
    bool record(std::string_view value) {
        const auto arrived = now_ns();
        std::int64_t sent = 0;
        if (std::from_chars(value.data(), value.data() + value.size(), sent).ec != std::errc{}) {
            warm_ups_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        {
            std::lock_guard lock(mutex_);
            micros_.push_back(static_cast<double>(arrived - sent) * 1e-3);
        }
        clock_.record(0);
        return true;
    }

    long warm_ups() const noexcept { return warm_ups_.load(std::memory_order_relaxed); }
    const delivery_clock& clock() const noexcept { return clock_; }
    percentiles result() {
        std::lock_guard lock(mutex_);
        return summarise(micros_);
    }

  private:
    delivery_clock clock_;
    std::atomic<long> warm_ups_{0};
    std::mutex mutex_;
    std::vector<double> micros_;
};

/// Warms the consumer up (until it has fetched a few rounds of warm-up values from every
/// partition), then produces `count` stamped values at `rate` messages/s.
void produce_paced(bench_cluster& cluster, const std::string& topic, int partitions, long count,
                   double rate, const latency_probe& probe) {
    kt::producer producer({{"bootstrap.servers", cluster.bootstrap()}, {"linger.ms", "0"}});
    const auto warm_up_deadline = std::chrono::steady_clock::now() + 60s;
    while (probe.warm_ups() < 2 * partitions &&
           std::chrono::steady_clock::now() < warm_up_deadline) {
        for (int p = 0; p < partitions; ++p) producer.produce(topic, "w", warm_up_value, p);
        std::this_thread::sleep_for(100ms);
    }
    const pacer ticks(rate);
    for (long i = 0; i < count; ++i) {
        ticks.wait_for(i);
        producer.produce(topic, fmt::format("key-{}", i % 1000), latency_probe::stamp());
    }
    producer.flush(60s);
}

long latency_messages(const options& o) {
    return std::clamp(o.messages / 20, 1000L, 50000L);
}

constexpr int latency_partitions = 6;

}  // namespace

percentiles summarise(std::vector<double> micros) {
    percentiles p{.samples = static_cast<long>(micros.size())};
    if (micros.empty()) return p;
    std::sort(micros.begin(), micros.end());
    auto at = [&](double q) { return micros[static_cast<std::size_t>(q * (micros.size() - 1))]; };
    p.p50_us = at(0.50);
    p.p99_us = at(0.99);
    p.p999_us = at(0.999);
    return p;
}

latency_result run_latency(bench_cluster& cluster, const options& o, const progress_note& note) {
    latency_result result{.messages = latency_messages(o), .rate = o.latency_rate};
    const auto raw_topic = cluster.create_topic("latency-raw", latency_partitions);
    const auto trigger_topic = cluster.create_topic("latency-kt", latency_partitions);
    {
        note("latency: raw librdkafka loop");
        latency_probe probe(result.messages);
        std::thread consumer([&] {
            raw_consume(
                {.config = cluster.consumer(cluster.unique("latency-raw")),
                 .topic = raw_topic,
                 .expected = result.messages,
                 .on_message = [&](std::string_view value) { return probe.record(value); }});
        });
        produce_paced(cluster, raw_topic, latency_partitions, result.messages, result.rate, probe);
        consumer.join();
        result.raw_received = probe.clock().seen();
        result.raw = probe.result();
    }
    {
        note("latency: 1 trigger");
        latency_probe probe(result.messages);
        kt::runtime rt(runtime_of(o));
        kt::trigger_host host(rt);
        host.add_trigger({.name = "latency",
                          .topic = trigger_topic,
                          .consumer = cluster.consumer(cluster.unique("latency-kt"))},
                         [&probe](const kt::message& m) -> asio::awaitable<void> {
                             probe.record(m.value());
                             co_return;
                         });
        host.start();
        produce_paced(cluster, trigger_topic, latency_partitions, result.messages, result.rate,
                      probe);
        probe.clock().wait(patience(result.messages));
        result.trigger_received = probe.clock().seen();
        result.trigger = probe.result();
    }
    return result;
}

namespace {

/// Pushes timestamps at hop_rate into a channel read by a coroutine on a kt::runtime shard;
/// returns push -> pop times (every sample pushed is timed) and the process CPU seconds.
std::pair<percentiles, double> measure_hop(long samples, std::chrono::microseconds poll_for) {
    std::vector<double> micros;  // shard thread only, until the runtime is gone
    micros.reserve(static_cast<std::size_t>(samples));
    std::promise<void> finished;  // outlives the shard, which sets it
    const double cpu_before = cpu_seconds();
    {
        kt::runtime rt({.shards = 1, .poll_before_sleep = poll_for});
        kt::spsc_channel<std::int64_t> channel(1024, rt.shard(0));
        asio::co_spawn(
            rt.shard(0),
            [&]() -> asio::awaitable<void> {
                for (;;) {
                    auto [ec] = co_await channel.async_wait(asio::as_tuple(asio::use_awaitable));
                    // Stamped per pop: an item pushed while this batch is being popped was not
                    // waiting when the coroutine resumed (stamping at resume made it negative).
                    std::int64_t pushed = 0;
                    while (channel.try_pop(pushed))
                        micros.push_back(static_cast<double>(now_ns() - pushed) * 1e-3);
                    if (ec) break;
                }
                finished.set_value();
            },
            asio::detached);
        // Paced so that every push finds the coroutine parked: the hop, not a burst's throughput.
        const pacer ticks(hop_rate);
        for (long i = 0; i < samples; ++i) {
            ticks.wait_for(i);
            // A full ring (the shard starved of CPU) delays the push instead of losing it.
            while (!channel.push(now_ns())) std::this_thread::yield();
        }
        channel.close();
        finished.get_future().wait();
    }
    return {summarise(std::move(micros)), cpu_seconds() - cpu_before};
}

}  // namespace

hop_result run_hop(const options& o) {
    const long samples = o.quick ? 5000 : 20000;
    constexpr std::chrono::microseconds poll_for(200);  // two intervals at hop_rate
    hop_result result{
        .rate = hop_rate, .pushed = samples, .poll_before_sleep_us = poll_for.count() * 1.0};
    std::tie(result.hop, result.cpu_seconds) = measure_hop(samples, {});
    std::tie(result.polling, result.polling_cpu_seconds) = measure_hop(samples, poll_for);
    return result;
}

}  // namespace kt_bench
