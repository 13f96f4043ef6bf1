// Triggers on a topic pattern ("^orders\..*", librdkafka's regex subscription): every matching
// topic, including one created while the trigger runs, is consumed without a restart, with
// partitions and offsets kept per real topic (equal partition numbers of two topics never mix),
// and committed per topic (read back with an independent client). The rules a pattern trigger
// must meet are refused with a config_error naming the field. Embedded cluster, or $KT_BOOTSTRAP.
#define BOOST_TEST_MODULE topic_pattern
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <kt/kt.hpp>

#include "broker_offsets.hpp"
#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::kafka;
using kt_test::stats_of;
using kt_test::stop_host;
using kt_test::two_shards;
using kt_test::wait_until;

namespace {

/// Offsets each trigger handled per (topic, partition), in handling order. Thread-safe.
class handled_by_topic {
  public:
    kt::handler recorder(std::string trigger) {
        return [this, trigger](const kt::message& m) -> asio::awaitable<void> {
            std::lock_guard lock(mutex_);
            offsets_[trigger][{std::string(m.topic()), m.partition()}].push_back(m.offset());
            co_return;
        };
    }
    using by_partition = std::map<std::pair<std::string, std::int32_t>, std::vector<std::int64_t>>;
    by_partition of(const std::string& trigger) const {
        std::lock_guard lock(mutex_);
        auto it = offsets_.find(trigger);
        return it == offsets_.end() ? by_partition{} : it->second;
    }
    std::set<std::string> topics_of(const std::string& trigger) const {
        std::set<std::string> topics;
        for (const auto& [id, offsets] : of(trigger)) topics.insert(id.first);
        return topics;
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, by_partition> offsets_;
};

/// Every partition of `topic` that holds records was handled exactly once, in offset order.
void check_handled_once_in_order(const handled_by_topic::by_partition& handled,
                                 const std::string& topic) {
    for (const auto& [partition, high] : kafka::instance().admin().high_watermarks(topic)) {
        auto it = handled.find({topic, partition});
        const auto expected = static_cast<std::size_t>(high);
        const std::size_t got = it == handled.end() ? 0 : it->second.size();
        BOOST_TEST(got == expected, topic << "[" << partition << "]");
        if (it == handled.end()) continue;
        for (std::size_t i = 0; i < it->second.size(); ++i)
            if (it->second[i] != static_cast<std::int64_t>(i)) {
                BOOST_ERROR(topic << "[" << partition << "]: offset " << it->second[i] << " at "
                                  << i);
                break;
            }
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_pattern_trigger_takes_every_matching_topic_and_one_created_later) {
    auto& k = kafka::instance();
    const auto base = k.unique("pattern");  // letters, digits and '-': no regex meaning
    const auto a = base + ".a", b = base + ".b", later = base + ".later", other = base + "-other";
    for (const auto& topic : {a, b}) k.create_topic(topic, 3);  // partitions 0-2 in both
    k.create_topic(other, 2);
    k.produce(a, 300);
    k.produce(b, 240);
    k.produce(other, 100);
    const auto group = k.unique("pattern-group");

    handled_by_topic handled;
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 200ms}};
    // The named trigger shares the pattern trigger's consumer (same group): one subscription of
    // a topic and a pattern.
    host.add_trigger({.name = "pattern",
                      .topic = "^" + base + "\\..*",
                      .consumer = k.consumer(group),
                      .dead_letter = {.topic = base + "-dead"}},
                     handled.recorder("pattern"));
    host.add_trigger({.name = "named", .topic = other, .consumer = k.consumer(group)},
                     handled.recorder("named"));
    BOOST_TEST(host.consumer_count() == 1u);
    host.start();
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return stats_of(host, "pattern").handled == 540 &&
                   stats_of(host, "named").handled == 100;
        },
        60s));

    // A topic that matches, created while the trigger runs: picked up at the next metadata
    // refresh (topic.metadata.refresh.interval.ms, 1 s in the suites), without a restart.
    k.create_topic(later, 2);
    k.produce(later, 160);
    BOOST_TEST(wait_until([&] { return stats_of(host, "pattern").handled == 700; }, 60s),
               "handled " << stats_of(host, "pattern").handled << " of 700");
    stop_host(rt, host);

    BOOST_TEST((handled.topics_of("pattern") == std::set<std::string>{a, b, later}));
    BOOST_TEST((handled.topics_of("named") == std::set<std::string>{other}));
    for (const auto& topic : {a, b, later})
        check_handled_once_in_order(handled.of("pattern"), topic);
    check_handled_once_in_order(handled.of("named"), other);
    // Committed per real topic, as the broker holds it.
    for (const auto& topic : {a, b, later, other})
        for (const auto& [partition, offsets] :
             kt_test::broker_offsets(k.bootstrap(), group, topic))
            BOOST_TEST(offsets.committed == offsets.high_watermark,
                       topic << "[" << partition << "] committed " << offsets.committed);
}

// A second member joins while the first one's trigger is paused with every message of both
// topics queued, each topic a single partition 0: the revoked one's queued messages are dropped
// there and redone by the second member; those of the one it keeps, partition 0 as well, stay
// queued and are handled once it resumes.
BOOST_AUTO_TEST_CASE(a_rebalance_moves_some_partitions_of_a_pattern_and_loses_nothing) {
    auto& k = kafka::instance();
    const auto base = k.unique("pattern-moves");
    const std::vector<std::string> topics{base + ".a", base + ".b"};
    for (const auto& topic : topics) {
        k.create_topic(topic, 1);
        k.produce(topic, 400);
    }
    const auto group = k.unique("pattern-moves-group");
    handled_by_topic handled;
    auto slow_recorder = [&](std::string name) -> kt::handler {
        return [record = handled.recorder(std::move(name))](
                   const kt::message& m) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 2ms);
            co_await timer.async_wait(asio::use_awaitable);
            co_await record(m);
        };
    };
    auto distinct_handled = [&] {
        std::set<std::tuple<std::string, std::int32_t, std::int64_t>> all;
        for (const auto* name : {"first", "second"})
            for (const auto& [id, offsets] : handled.of(name))
                for (auto offset : offsets) all.emplace(id.first, id.second, offset);
        return all.size();
    };
    const kt::trigger_options options{.name = "pattern",
                                      .topic = "^" + base + "\\.[ab]$",
                                      .consumer = k.consumer(group),
                                      .dead_letter = {.enabled = false}};
    // One shard: both partitions 0 meet in the first member's one runner.
    kt::runtime first_rt{{.shards = 1}}, second_rt{two_shards};
    kt::trigger_host first{first_rt, {.commit_interval = 200ms}};
    kt::trigger_host second{second_rt, {.commit_interval = 200ms}};
    first.add_trigger(options, slow_recorder("first"));
    second.add_trigger(options, slow_recorder("second"));
    first.pause_trigger("pattern");
    first.start();
    auto queued_in_first = [&] {
        std::size_t partitions_with_backlog = 0;
        for (const auto& t : first.metrics().triggers)
            for (const auto& p : t.partitions) partitions_with_backlog += p.backlog == 400;
        return partitions_with_backlog;
    };
    BOOST_TEST_REQUIRE(wait_until([&] { return queued_in_first() == 2u; }, 60s),
                       "both topics' messages wait in the first member");
    second.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(second, "pattern").handled > 0; }, 60s),
                       "the second member got partitions");
    first.resume_trigger("pattern");
    BOOST_TEST(wait_until([&] { return distinct_handled() == 800u; }, 90s),
               "handled " << distinct_handled() << " of 800");
    stop_host(second_rt, second);
    stop_host(first_rt, first);

    for (const auto& topic : topics)
        for (const auto& [partition, offsets] :
             kt_test::broker_offsets(k.bootstrap(), group, topic))
            BOOST_TEST(offsets.committed == offsets.high_watermark,
                       topic << "[" << partition << "] committed " << offsets.committed);
}

BOOST_AUTO_TEST_CASE(removing_a_pattern_trigger_leaves_the_named_one_on_its_consumer) {
    auto& k = kafka::instance();
    const auto base = k.unique("pattern-remove");
    const auto matched = base + ".x", other = base + "-other";
    k.create_topic(matched, 2);
    k.create_topic(other, 2);
    k.produce(matched, 100);
    k.produce(other, 100);
    const auto group = k.unique("pattern-remove-group");

    handled_by_topic handled;
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 200ms}};
    host.add_trigger({.name = "pattern",
                      // Kafka evaluates KIP-848 patterns against the whole name (Java's
                      // Pattern.matches); librdkafka's classic subscription finds them anywhere.
                      .topic = "^" + base + "\\..*",
                      .consumer = k.consumer(group),
                      .dead_letter = {.enabled = false}},
                     handled.recorder("pattern"));
    host.add_trigger({.name = "named", .topic = other, .consumer = k.consumer(group)},
                     handled.recorder("named"));
    host.start();
    BOOST_TEST_REQUIRE(wait_until(
        [&] {
            return stats_of(host, "pattern").handled == 100 &&
                   stats_of(host, "named").handled == 100;
        },
        60s));
    kt_test::run_coro(rt.shard(0),
                      [&]() -> asio::awaitable<void> { co_await host.remove_trigger("pattern"); });
    BOOST_TEST(host.consumer_count() == 1u);
    k.produce(matched, 50, 100, 100);
    k.produce(other, 50, 100, 100);
    BOOST_TEST(wait_until([&] { return stats_of(host, "named").handled == 150; }, 60s),
               "the named trigger goes on after the removal");
    stop_host(rt, host);
    BOOST_TEST(handled.of("pattern").size() == 2u);  // both partitions of the matched topic
    std::size_t pattern_handled = 0;
    for (const auto& [id, offsets] : handled.of("pattern")) pattern_handled += offsets.size();
    BOOST_TEST(pattern_handled == 100u, "nothing reached the removed trigger");
}

BOOST_AUTO_TEST_CASE(what_a_pattern_trigger_cannot_have_is_refused_naming_the_field) {
    auto& k = kafka::instance();
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    const auto refused = [&](kt::trigger_options o, const std::string& property,
                             const std::string& words) {
        o.name = "p";
        o.consumer = k.consumer("pattern-refusals");
        kt_test::check_refused(host, std::move(o), property, words);
    };
    refused({.topic = "^orders\\.(", .dead_letter = {.enabled = false}}, "topic",
            "invalid topic pattern \"^orders\\.(\"");
    refused({.topic = "^orders\\..*"}, "dead_letter.topic", "names its dead letter topic");
    refused({.topic = "^orders\\..*", .dead_letter = {.topic = "orders.dead"}}, "dead_letter.topic",
            "matches the dead letter topic \"orders.dead\"");
    refused({.topic = "^orders\\..*",
             .dead_letter = {.enabled = false},
             .listeners = {.on_assigned = [](std::vector<std::int32_t>) -> asio::awaitable<void> {
                 co_return;
             }}},
            "listeners", "cannot have them");
    refused({.topic = "^orders\\..*",
             .dead_letter = {.enabled = false},
             .delivery = kt::delivery_guarantee::exactly_once},
            "delivery", "exactly_once needs a named topic");
    BOOST_TEST(host.consumer_count() == 0u);
}
