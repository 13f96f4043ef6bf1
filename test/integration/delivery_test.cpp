// How messages reach handlers: the ordering modes and their in-flight bounds, backpressure,
// null keys, large messages, many partitions on many shards, guarantees that never share a
// consumer, a stop before the first assignment, a handler that ignores cancellation, transforms
// and a trigger removed while another streams its topic. Commits
// are read back with an independent client (kt::admin, a consumer of its own).
#define BOOST_TEST_MODULE delivery
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/kt.hpp>

#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"
#include "trickle_producer.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::handled_log;
using kt_test::kafka;
using kt_test::recording;
using kt_test::run_coro;
using kt_test::stop_host;
using kt_test::sum;
using kt_test::wait_until;

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
}

/// Handlers running at once: overall and per partition, with the peaks seen. Thread-safe.
class concurrency {
  public:
    void begin(std::int32_t partition) {
        std::lock_guard lock(mutex_);
        peak_ = std::max(peak_, ++running_);
        auto& p = per_partition_[partition];
        p.peak = std::max(p.peak, ++p.running);
    }
    void end(std::int32_t partition) {
        std::lock_guard lock(mutex_);
        --running_;
        --per_partition_[partition].running;
    }
    int peak() const {
        std::lock_guard lock(mutex_);
        return peak_;
    }
    int peak_of_any_partition() const {
        std::lock_guard lock(mutex_);
        int peak = 0;
        for (const auto& [p, state] : per_partition_) peak = std::max(peak, state.peak);
        return peak;
    }

  private:
    struct partition_state {
        int running = 0, peak = 0;
    };
    mutable std::mutex mutex_;
    int running_ = 0, peak_ = 0;
    std::map<std::int32_t, partition_state> per_partition_;
};

/// Offsets of each partition in the order handlers started them. Thread-safe.
class start_order {
  public:
    void add(std::int32_t partition, std::int64_t offset) {
        std::lock_guard lock(mutex_);
        order_[partition].push_back(offset);
    }
    /// Partitions whose offsets did not start strictly in increasing order.
    std::vector<std::int32_t> out_of_order() const {
        std::lock_guard lock(mutex_);
        std::vector<std::int32_t> bad;
        for (const auto& [p, offsets] : order_)
            if (!std::is_sorted(offsets.begin(), offsets.end()) ||
                std::adjacent_find(offsets.begin(), offsets.end()) != offsets.end())
                bad.push_back(p);
        return bad;
    }
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& [p, offsets] : order_) n += offsets.size();
        return n;
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::int32_t, std::vector<std::int64_t>> order_;
};

/// A handler taking `delay` on a timer (as I/O would) that records its concurrency, the order
/// it started offsets in (if asked) and the message.
kt::handler timed(concurrency& running, handled_log& log, std::string name,
                  std::chrono::milliseconds delay, start_order* order = nullptr) {
    return [&running, &log, name, delay, order](const kt::message& m) -> asio::awaitable<void> {
        running.begin(m.partition());
        if (order) order->add(m.partition(), m.offset());
        co_await sleep_for(delay);
        log.add(name, m);
        running.end(m.partition());
    };
}

/// Every partition's committed offset at its high watermark, read by an independent client.
bool commits_reach_the_end(const std::string& group, const std::string& topic) {
    auto& k = kafka::instance();
    return wait_until([&] {
        try {
            return k.admin().committed(group, topic, 2s) == k.admin().high_watermarks(topic);
        } catch (const std::exception&) {
            return false;
        }
    });
}

}  // namespace

BOOST_AUTO_TEST_CASE(partition_ordering_runs_one_message_per_partition_at_a_time_in_offset_order) {
    // 12 partitions over 4 shards: more of both than any other suite uses.
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("ordered", 12, 600);
    kt::runtime rt{{.shards = 4}};
    kt::trigger_host host{rt};
    concurrency running;
    start_order order;
    handled_log log;
    host.add_trigger({.name = "ordered", .topic = topic, .consumer = k.consumer(group)},
                     timed(running, log, "ordered", 2ms, &order));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("ordered") == 600; }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    BOOST_TEST(running.peak_of_any_partition() == 1);
    BOOST_TEST(running.peak() > 1, "partitions ran side by side (peak " << running.peak() << ")");
    BOOST_TEST(order.out_of_order().empty());
    BOOST_TEST(order.size() == 600u);
    BOOST_TEST(log.duplicates() == 0u);
}

BOOST_AUTO_TEST_CASE(no_ordering_runs_one_partitions_messages_up_to_max_in_flight_at_once) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("unordered", 1, 200);
    kt::runtime rt{{.shards = 1}};  // max_in_flight is per shard
    kt::trigger_host host{rt};
    concurrency running;
    handled_log log;
    host.add_trigger({.name = "unordered",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .ordering = kt::ordering::none,
                      .max_in_flight = 8},
                     timed(running, log, "unordered", 10ms));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("unordered") == 200; }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    // 200 waiting messages and 10 ms handlers: the bound is reached, never passed.
    BOOST_TEST(running.peak() == 8);
    BOOST_TEST(log.duplicates() == 0u);
}

BOOST_AUTO_TEST_CASE(partitions_with_backlogs_take_turns_at_max_in_flight_1) {
    // A worker goes on with its own partition's next message only while no other partition waits
    // (trigger_runner::continues_in_lane); draining one partition first would switch twice.
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("turns", 3, 300);
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::vector<std::int32_t> started;  // partitions, in the order their handlers started
    host.add_trigger(
        {.name = "turns", .topic = topic, .consumer = k.consumer(group), .max_in_flight = 1},
        [&](const kt::message& m) -> asio::awaitable<void> {
            {
                std::lock_guard lock(mutex);
                started.push_back(m.partition());
            }
            co_await sleep_for(1ms);
        });
    host.start();
    auto count = [&] {
        std::lock_guard lock(mutex);
        return started.size();
    };
    BOOST_TEST_REQUIRE(wait_until([&] { return count() >= 300; }));
    stop_host(rt, host);
    std::lock_guard lock(mutex);
    std::size_t switches = 0;
    for (std::size_t i = 1; i < started.size(); ++i) switches += started[i] != started[i - 1];
    BOOST_TEST(switches > 100u, switches << " switches between partitions in " << started.size());
}

BOOST_AUTO_TEST_CASE(key_ordering_is_bounded_by_max_in_flight_and_null_keys_form_one_lane) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("null-keys", 1);
    const auto group = k.unique("null-keys");
    {
        kt::producer producer({{"bootstrap.servers", k.bootstrap()}, {"linger.ms", "1"}});
        run_coro(asio::system_executor(), [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 300; ++i) {
                kt::record r{.topic = topic, .value = std::to_string(i), .partition = 0};
                if (i % 3 != 0) r.key = "key-" + std::to_string(i % 50);  // every third: null
                co_await producer.send(std::move(r));
            }
        });
    }
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    concurrency running;
    std::mutex mutex;
    std::map<std::string, std::vector<std::int64_t>> by_key;  // "(null)" for null keys
    std::atomic<int> handled{0};
    host.add_trigger(
        {.name = "keyed",
         .topic = topic,
         .consumer = k.consumer(group),
         .ordering = kt::ordering::key,
         .max_in_flight = 4},
        [&](const kt::message& m) -> asio::awaitable<void> {
            running.begin(0);
            {
                std::lock_guard lock(mutex);
                by_key[m.has_key() ? std::string(m.key()) : "(null)"].push_back(m.offset());
            }
            co_await sleep_for(3ms);
            running.end(0);
            ++handled;
        });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return handled == 300; }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    BOOST_TEST(running.peak() <= 4);
    BOOST_TEST(running.peak() > 1, "keys ran side by side (peak " << running.peak() << ")");
    std::lock_guard lock(mutex);
    BOOST_TEST_REQUIRE(by_key.count("(null)") == 1u);
    BOOST_TEST(by_key["(null)"].size() == 100u);
    for (const auto& [key, offsets] : by_key)
        BOOST_TEST(std::is_sorted(offsets.begin(), offsets.end()), key << " in offset order");
}

BOOST_AUTO_TEST_CASE(a_full_backlog_holds_its_partition_back_and_resumes_without_loss) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("backlog", 1, 300);
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    std::atomic<bool> open{false};
    handled_log log;
    host.add_trigger(
        {.name = "held", .topic = topic, .consumer = k.consumer(group), .max_backlog = 20},
        [&](const kt::message& m) -> asio::awaitable<void> {
            while (!open) co_await sleep_for(5ms);
            log.add("held", m);
        });
    host.start();
    // The first handler waits, so the backlog fills up to max_backlog and the partition is held.
    kt::partition_metrics seen;
    BOOST_TEST(wait_until([&] {
                   const auto s = host.metrics();
                   for (const auto& t : s.triggers)
                       if (t.name == "held" && !t.partitions.empty()) seen = t.partitions.front();
                   return seen.paused;
               }),
               "the partition is held back (backlog " << seen.backlog << ")");
    BOOST_TEST(seen.backlog >= 20u);
    BOOST_TEST(seen.backlog < 300u, "not everything was taken in (" << seen.backlog << ")");
    BOOST_TEST(log.distinct("held") == 0u);
    open = true;
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("held") == 300; }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
}

BOOST_AUTO_TEST_CASE(one_megabyte_values_arrive_whole) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("large", 2);
    const auto group = k.unique("large");
    const std::size_t size = 1'000'000 - 1'000;  // under message.max.bytes with its overhead
    {
        kt::producer producer({{"bootstrap.servers", k.bootstrap()}});
        run_coro(asio::system_executor(), [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 6; ++i) {
                // A named record: GCC 12 mis-destroys a braced temporary in a co_await argument.
                kt::record r{.topic = topic,
                             .key = "big-" + std::to_string(i),
                             .value = std::string(size, static_cast<char>('a' + i))};
                co_await producer.send(std::move(r));
            }
        });
    }
    kt::runtime rt{{.shards = 2}};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::map<std::string, bool> whole;  // key -> value intact
    host.add_trigger({.name = "large", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         const char expected = static_cast<char>('a' + (m.key().back() - '0'));
                         const auto v = m.value();
                         std::lock_guard lock(mutex);
                         whole[std::string(m.key())] =
                             v.size() == size &&
                             std::all_of(v.begin(), v.end(), [&](char c) { return c == expected; });
                         co_return;
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        std::lock_guard lock(mutex);
        return whole.size() == 6u;
    }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    for (const auto& [key, ok] : whole) BOOST_TEST(ok, key << " arrived whole");
}

BOOST_AUTO_TEST_CASE(different_guarantees_never_share_a_consumer) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("guarantees", 2, 50);
    kt::runtime rt{{.shards = 2}};
    kt::trigger_host host{rt};
    handled_log log;
    const auto config = k.consumer(group);
    host.add_trigger({.name = "alo-1", .topic = topic, .consumer = config},
                     recording(log, "alo-1"));
    host.add_trigger({.name = "alo-2", .topic = topic, .consumer = config},
                     recording(log, "alo-2"));
    host.add_trigger({.name = "amo",
                      .topic = topic,
                      .consumer = config,
                      .delivery = kt::delivery_guarantee::at_most_once},
                     recording(log, "amo"));
    // The same consumer config: the two at-least-once triggers share, at-most-once stands apart.
    BOOST_TEST(host.consumer_count() == 2u);
    host.start();
    BOOST_TEST(wait_until(
        [&] { return log.distinct("alo-1") + log.distinct("alo-2") + log.distinct("amo") > 0; }));
    BOOST_TEST(host.consumer_count() == 2u);
    const auto consumers = host.metrics().consumers;
    std::vector<std::size_t> triggers;
    for (const auto& c : consumers) triggers.push_back(c.triggers);
    std::sort(triggers.begin(), triggers.end());
    BOOST_TEST((triggers == std::vector<std::size_t>{1, 2}));
    stop_host(rt, host);
}

BOOST_AUTO_TEST_CASE(a_stop_before_the_first_assignment_completes_and_commits_nothing) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("early-stop", 2, 50);
    kt::runtime rt{{.shards = 2}};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "early", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "early"));
    host.start();
    // The embedded cluster's first join takes ~3 s: the stop lands while it is under way.
    const auto consumers = host.metrics().consumers;
    BOOST_TEST_REQUIRE(consumers.size() == 1u);
    BOOST_TEST_REQUIRE(consumers.front().assigned_partitions == 0u);
    stop_host(rt, host);
    BOOST_TEST(host.consumer_count() == 0u);
    BOOST_TEST(log.distinct("early") == 0u);
    BOOST_TEST(k.admin().committed(group, topic).empty());
    // The group is free: a new host consumes everything from the start.
    kt::trigger_host next{rt};
    next.add_trigger({.name = "next", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "next"));
    next.start();
    BOOST_TEST(wait_until([&] { return log.distinct("next") == 50; }));
    stop_host(rt, next);
    BOOST_TEST(sum(k.admin().committed(group, topic)) == 50);
}

BOOST_AUTO_TEST_CASE(a_handler_that_ignores_cancellation_does_not_hold_stop_past_its_deadline) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("stubborn", 1, 10);
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt, {.drain_timeout = 300ms}};
    std::atomic<bool> release{false}, stubborn_started{false};
    handled_log log;
    host.add_trigger({.name = "stubborn", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         if (m.offset() == 5) {
                             stubborn_started = true;
                             // Swallows the cancellation every wait reports, until released.
                             while (!release) {
                                 asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
                                 auto [ec] =
                                     co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
                                 (void)ec;
                             }
                         }
                         log.add("stubborn", m);
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stubborn_started.load(); }));
    stop_host(rt, host);  // bounded by run_coro's 60 s: a hang fails here
    release = true;
    BOOST_TEST(host.consumer_count() == 0u);
    // Offsets 0..4 finished, 5 never did: the commit stops below it, 5 goes to the next owner.
    BOOST_TEST(k.admin().committed(group, topic)[0] == 5);
}

namespace {

/// The records of `topic`, read uncommitted (the embedded cluster writes no transaction markers,
/// so read_committed would wait for them forever), until `enough` holds: value -> count.
std::map<std::string, int> values_in(
    const std::string& topic,
    const std::function<bool(const std::map<std::string, int>&)>& enough) {
    auto& k = kafka::instance();
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    auto config = k.consumer(k.unique("reader"));
    config.set("isolation.level", "read_uncommitted");
    auto sub = host.subscribe({.name = "reader", .topic = topic, .consumer = config});
    host.start();
    std::map<std::string, int> values;
    run_coro(rt.shard(0), [&]() -> asio::awaitable<void> {
        while (!enough(values)) {
            auto m = co_await sub.next();
            ++values[std::string(m.value())];
            sub.complete(m);
        }
    });
    stop_host(rt, host);
    return values;
}

void transform_copies_every_message_once(kt::delivery_guarantee delivery) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("transform", 2, 200);
    const auto out = k.new_topic("transform-out", 2);
    kt::runtime rt{{.shards = 2}};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::set<std::string> failed;  // values of the messages that failed for good
    // Distinct values sent: under exactly_once an aborted transaction runs its handlers again.
    std::set<std::string> sent;
    host.add_trigger({.name = "copy",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .retry = {.max_attempts = 1},
                      .dead_letter = {.enabled = false},
                      .delivery = delivery},
                     [&](const kt::message& m, kt::producer& producer) -> asio::awaitable<void> {
                         if (m.offset() % 25 == 7) {
                             std::lock_guard lock(mutex);
                             failed.insert(std::string(m.value()));
                             throw std::runtime_error("not this one");
                         }
                         kt::record r{.topic = out,
                                      .key = std::string(m.key()),
                                      .value = std::string(m.value())};
                         co_await producer.send(std::move(r));
                         std::lock_guard lock(mutex);
                         sent.insert(std::string(m.value()));
                     });
    host.start();
    // Offsets 7 and 32 of each partition's 0..~100 fail: 8 of 200.
    const auto high = k.admin().high_watermarks(topic);
    int failing = 0;
    for (auto [p, end] : high)
        for (std::int64_t o = 0; o < end; ++o) failing += o % 25 == 7;
    BOOST_TEST_REQUIRE(wait_until([&] {
        std::lock_guard lock(mutex);
        return sent.size() == static_cast<std::size_t>(200 - failing);
    }));
    BOOST_TEST(commits_reach_the_end(group, topic));
    stop_host(rt, host);
    // Every non-failing message, and only those. A failure aborts its transaction under
    // exactly_once, and the embedded cluster cannot hide aborted records (no markers): there a
    // copy may show twice. At least once, nothing failed for good twice: once each.
    std::set<std::string> expected;
    for (int i = 0; i < 200; ++i) expected.insert(fmt::format("value-{}", i));
    BOOST_TEST(failed.size() == static_cast<std::size_t>(failing));
    for (const auto& value : failed) expected.erase(value);
    // At least once the topic holds only data records: read up to its high watermarks. A
    // transactional topic's high watermark also counts the commit markers (on a real broker),
    // which are never delivered: read until every expected value is there.
    const auto records = static_cast<std::size_t>(sum(k.admin().high_watermarks(out)));
    const auto values = values_in(out, [&](const std::map<std::string, int>& seen) {
        if (delivery == kt::delivery_guarantee::at_least_once) {
            std::size_t n = 0;
            for (const auto& [value, count] : seen) n += static_cast<std::size_t>(count);
            return n == records;
        }
        return std::all_of(expected.begin(), expected.end(),
                           [&](const std::string& v) { return seen.count(v) != 0; });
    });
    std::set<std::string> copied;
    for (const auto& [value, count] : values) copied.insert(value);
    BOOST_TEST((copied == expected), copied.size()
                                         << " distinct values copied of " << expected.size());
    if (delivery == kt::delivery_guarantee::at_least_once)
        for (const auto& [value, count] : values) BOOST_TEST(count == 1, value << " copied once");
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_exactly_once_transform_copies_every_message_and_commits_its_input) {
    transform_copies_every_message_once(kt::delivery_guarantee::exactly_once);
}

BOOST_AUTO_TEST_CASE(an_at_least_once_transform_copies_every_message_and_commits_its_input) {
    transform_copies_every_message_once(kt::delivery_guarantee::at_least_once);
}

BOOST_AUTO_TEST_CASE(removing_a_trigger_leaves_the_others_on_its_topic_streaming) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("leaving", 3, 150);
    kt::runtime rt{{.shards = 2}};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "stays", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "stays"));
    host.add_trigger({.name = "leaves", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "leaves"));
    host.start();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return log.distinct("stays") == 150 && log.distinct("leaves") == 150; }));
    {
        kt_test::trickle_producer trickle(topic, 150);
        BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("stays") >= 170; }));
        run_coro(rt.shard(0),
                 [&]() -> asio::awaitable<void> { co_await host.remove_trigger("leaves"); });
        const auto left_with = log.distinct("leaves");
        BOOST_TEST(host.consumer_count() == 1u);  // the consumer stays for the other trigger
        const auto before = log.distinct("stays");
        BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("stays") >= before + 20; }),
                           "the stream goes on after the removal");
        BOOST_TEST(trickle.stop());
        BOOST_TEST(log.distinct("leaves") == left_with, "nothing reaches a removed trigger");
    }
    const auto high = k.admin().high_watermarks(topic);
    BOOST_TEST(
        wait_until([&] { return static_cast<std::int64_t>(log.distinct("stays")) == sum(high); }),
        "every message reached the trigger that stayed");
    BOOST_TEST(commits_reach_the_end(group, topic));  // the removed trigger holds nothing back
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
}
