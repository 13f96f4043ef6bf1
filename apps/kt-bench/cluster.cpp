// The cluster under test (embedded or --bootstrap) and the clock that times consumers on it.
#include <unistd.h>

#include <ctime>
#include <stdexcept>

#include <fmt/format.h>

#include <kt/admin.hpp>
#include <kt/producer.hpp>

#include "bench.hpp"

namespace kt_bench {

namespace {

std::int64_t now_ns() noexcept {
    return std::chrono::steady_clock::now().time_since_epoch().count();
}

}  // namespace

bench_cluster::bench_cluster(const std::string& bootstrap)
    : bootstrap_(bootstrap),
      prefix_(fmt::format("kt-bench-{}-{}-", ::getpid(), std::time(nullptr))) {
    if (bootstrap_.empty()) {
        cluster_ =
            std::make_unique<kt::embedded_cluster>(kt::embedded_cluster_options{.brokers = 3});
        bootstrap_ = cluster_->bootstrap();
    }
}

std::string bench_cluster::unique(std::string_view name) const {
    return prefix_ + std::string(name);
}

std::string bench_cluster::create_topic(std::string_view name, int partitions) {
    auto topic = unique(name);
    if (cluster_)
        cluster_->create_topic(topic, partitions);
    else
        kt::admin({{"bootstrap.servers", bootstrap_}}).create_topic(topic, partitions);
    return topic;
}

void bench_cluster::fill(const std::string& topic, long count, long keys) {
    kt::producer producer({{"bootstrap.servers", bootstrap_}, {"linger.ms", "5"}});
    const std::string value(100, 'v');
    for (long i = 0; i < count; ++i)
        producer.produce(topic, fmt::format("key-{}", i % keys), value);
    if (!producer.flush(std::chrono::seconds(120)) ||
        producer.delivered() != static_cast<std::uint64_t>(count))
        throw std::runtime_error(fmt::format("producing to {}: {} of {} records delivered", topic,
                                             producer.delivered(), count));
}

kt::consumer_config bench_cluster::consumer(const std::string& group) const {
    kt::consumer_config config{
        {"bootstrap.servers", bootstrap_}, {"group.id", group}, {"auto.offset.reset", "earliest"}};
    if (cluster_) config.set("fetch.wait.max.ms", "10");
    // librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s) once its fetch queue
    // holds queued.min.messages (100 000), and a queue forwarded to the consumer queue counts
    // everything queued there: the raw loop would stall on a 200 000 message backlog in most
    // rounds (still so on 2.14.2: 3 of 4 rounds at 85-147 k msgs/s instead of ~1.8 M).
    config.set("queued.min.messages", "1000000");
    return config;
}

namespace {
std::atomic<std::uint64_t> next_clock_id{1};
}  // namespace

delivery_clock::delivery_clock(long expected, int partitions)
    : expected_(expected),
      all_partitions_((std::uint64_t{1} << partitions) - 1),
      id_(next_clock_id.fetch_add(1, std::memory_order_relaxed)) {}

delivery_clock::tally& delivery_clock::local() noexcept {
    thread_local std::uint64_t clock_id = 0;
    thread_local tally* mine = nullptr;
    if (clock_id != id_) {
        const auto i = tallies_used_.fetch_add(1, std::memory_order_relaxed);
        mine = &tallies_[i % max_tallies];
        clock_id = id_;
    }
    return *mine;
}

long delivery_clock::seen() const noexcept {
    const auto used = std::min(tallies_used_.load(std::memory_order_relaxed), max_tallies);
    long n = 0;
    for (std::size_t i = 0; i < used; ++i) n += tallies_[i].count.load(std::memory_order_relaxed);
    return n;
}

void delivery_clock::record(std::int32_t partition) noexcept {
    const auto now = now_ns();
    auto& mine = local();
    mine.count.fetch_add(1, std::memory_order_relaxed);
    mine.last_ns.store(now, std::memory_order_relaxed);
    if (first_ns_.load(std::memory_order_relaxed) == 0) {
        std::int64_t none = 0;
        first_ns_.compare_exchange_strong(none, now, std::memory_order_relaxed);
    }
    const auto bit = std::uint64_t{1} << (partition & 63);
    if ((partitions_seen_.load(std::memory_order_relaxed) & bit) == 0) {
        const auto before = partitions_seen_.fetch_or(bit, std::memory_order_relaxed);
        if ((before | bit) == all_partitions_ && before != all_partitions_) {
            seen_when_all_flowing_.store(seen(), std::memory_order_relaxed);
            all_flowing_ns_.store(now, std::memory_order_relaxed);
        }
    }
}

bool delivery_clock::wait(std::chrono::steady_clock::duration timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen() < expected_) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

double delivery_clock::rate() const noexcept {
    if (seen() < expected_) return 0;
    // The last message is the latest any thread recorded.
    std::int64_t last = 0;
    for (const auto& t : tallies_) last = std::max(last, t.last_ns.load(std::memory_order_relaxed));
    auto start = all_flowing_ns_.load(std::memory_order_relaxed);
    auto counted = expected_ - seen_when_all_flowing_.load(std::memory_order_relaxed);
    if (start == 0 || counted < expected_ / 10) {
        start = first_ns_.load(std::memory_order_relaxed);
        counted = expected_ - 1;
    }
    if (last == 0 || last <= start) return 0;
    return static_cast<double>(counted) / (static_cast<double>(last - start) * 1e-9);
}

std::chrono::steady_clock::duration patience(long messages) {
    return 60s + std::chrono::milliseconds(messages / 5);
}

}  // namespace kt_bench
