// Subscription churn on one shared consumer: a trigger on a second topic comes and goes every few
// seconds while another trigger streams. The streaming topic must not notice beyond the
// rebalances themselves, commits must reach the broker (read back with an independent client),
// and stop() must commit and close without an abort. Embedded cluster, or $KT_BOOTSTRAP.
#define BOOST_TEST_MODULE subscription_churn
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <kt/kt.hpp>

#include "broker_offsets.hpp"
#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"
#include "log_capture.hpp"
#include "trickle_producer.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::kafka;
using kt_test::wait_until;
using steady = std::chrono::steady_clock;

namespace {

/// When each message of a trigger was handled, for the longest pause between two of them.
class handling_times {
  public:
    void add() {
        std::lock_guard lock(mutex_);
        times_.push_back(steady::now());
    }
    std::chrono::milliseconds longest_gap() const {
        std::lock_guard lock(mutex_);
        steady::duration longest{};
        for (std::size_t i = 1; i < times_.size(); ++i)
            longest = std::max(longest, times_[i] - times_[i - 1]);
        return std::chrono::duration_cast<std::chrono::milliseconds>(longest);
    }

  private:
    mutable std::mutex mutex_;
    std::vector<steady::time_point> times_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_trigger_coming_and_going_on_another_topic_leaves_the_stream_untouched) {
    auto& k = kafka::instance();
    auto& logs = kt_test::log_capture::instance();
    const auto log_mark = logs.mark();
    const auto stream_topic = k.new_topic("churn-stream", 4);
    const auto churn_topic = k.new_topic("churn-other", 2);
    const auto group = k.unique("churn");
    constexpr int cycles = 4;
    constexpr int per_cycle = 20;  // new records on the churn topic for each trigger that comes

    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt, {.commit_interval = 500ms}};
    kt_test::handled_log handled;
    handling_times stream_times;
    host.add_trigger({.name = "stream", .topic = stream_topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         handled.add("stream", m);
                         stream_times.add();
                         co_return;
                     });
    host.start();
    kt_test::trickle_producer producer(stream_topic, 0, 50);  // ~1000 records/s
    BOOST_TEST_REQUIRE(wait_until([&] { return handled.distinct("stream") > 0; }),
                       "the stream is being handled");

    for (int cycle = 0; cycle < cycles; ++cycle) {
        const auto started = steady::now();
        k.produce(churn_topic, per_cycle, 10, cycle * per_cycle);
        const auto name = fmt::format("churn-{}", cycle);
        host.add_trigger({.name = name, .topic = churn_topic, .consumer = k.consumer(group)},
                         kt_test::recording(handled, "churn"));
        BOOST_TEST_REQUIRE(
            wait_until([&] { return handled.distinct("churn") == (cycle + 1u) * per_cycle; }),
            name << " handled its records (" << handled.distinct("churn") << " of "
                 << (cycle + 1) * per_cycle << ")");
        kt_test::run_coro(rt.shard(0),
                          [&]() -> asio::awaitable<void> { co_await host.remove_trigger(name); });
        std::this_thread::sleep_for(std::max(
            0ms,
            std::chrono::duration_cast<std::chrono::milliseconds>(started + 3s - steady::now())));
    }

    BOOST_TEST_REQUIRE(producer.stop(), "every record of the stream was delivered");
    const auto produced = static_cast<std::size_t>(producer.next());
    BOOST_TEST(wait_until([&] { return handled.distinct("stream") == produced; }),
               "the stream handled " << handled.distinct("stream") << " of " << produced);
    kt_test::stop_host(rt, host);

    BOOST_TEST(handled.duplicates() == 0u, handled.duplicates() << " records handled twice");
    BOOST_TEST_MESSAGE("longest pause between two handled stream records: "
                       << stream_times.longest_gap().count() << " ms over " << cycles
                       << " subscription changes and back");
    // A revocation that waits for handlers long finished stalls every trigger on the consumer.
    BOOST_TEST(logs.since(log_mark, {"'" + group + "'", "still running"}).empty(),
               "no revocation or listener waited for handlers that were not running");

    // The broker holds what was handled, and committed() reports exactly what it acknowledged.
    const auto ours = host.committed();
    for (const auto& topic : {stream_topic, churn_topic}) {
        const auto broker = kt_test::broker_offsets(k.bootstrap(), group, topic);
        for (const auto& [partition, offsets] : broker) {
            BOOST_TEST(offsets.committed == offsets.high_watermark,
                       topic << "[" << partition << "] committed " << offsets.committed
                             << ", high watermark " << offsets.high_watermark);
            const auto topic_it = ours.find(topic);
            const auto reported = topic_it == ours.end() || !topic_it->second.count(partition)
                                      ? -1
                                      : topic_it->second.at(partition);
            BOOST_TEST(reported == offsets.committed,
                       topic << "[" << partition << "] committed() says " << reported
                             << ", the broker " << offsets.committed);
        }
    }
}

// Regression: a stalled revocation. The chain: runner::revoke reported revoke_done with topic id
// 0 whatever the partition's topic, so shared_consumer::on_completion never counted down
// revokes_pending_ for a partition of the consumer's second topic, and revoke_partitions (inside
// the rebalance callback, on the poll thread) waited the whole revoke_drain_timeout for handlers
// that had finished long before, every trigger of the consumer standing still meanwhile.
BOOST_AUTO_TEST_CASE(a_revocation_on_a_consumers_second_topic_waits_only_for_running_handlers) {
    auto& k = kafka::instance();
    auto& logs = kt_test::log_capture::instance();
    const auto log_mark = logs.mark();
    const auto [first_topic, group] = k.topic_with_data("revoke-first", 4, 200);
    const auto second_topic = k.new_topic("revoke-second", 4);
    k.produce(second_topic, 200);

    kt::runtime rt{kt_test::two_shards};
    kt_test::handled_log handled;
    auto add = [&](kt::trigger_host& host, const std::string& member, const std::string& topic) {
        host.add_trigger(
            {.name = member + ":" + topic, .topic = topic, .consumer = k.consumer(group)},
            kt_test::recording(handled, topic));
    };
    kt::trigger_host first{rt};
    add(first, "first", first_topic);
    add(first, "first", second_topic);
    first.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        return handled.distinct(first_topic) == 200u && handled.distinct(second_topic) == 200u;
    }));
    // A second member subscribed to the second topic only: the first one can only give up
    // partitions of its consumer's second topic.
    kt::trigger_host second{rt};
    add(second, "second", second_topic);
    second.start();
    BOOST_TEST(wait_until(
                   [&] {
                       return !logs.since(log_mark, {"'" + group + "'", "revoked"}).empty();
                   },
                   30s),
               "the first member revoked partitions");
    kt_test::stop_host(rt, second);
    kt_test::stop_host(rt, first);
    for (const auto& line : logs.since(log_mark, {"'" + group + "'", "revoked"}))
        BOOST_TEST_MESSAGE(line);
    BOOST_TEST(logs.since(log_mark, {"'" + group + "'", "still running"}).empty(),
               "no revocation waited for handlers that were not running");
}
