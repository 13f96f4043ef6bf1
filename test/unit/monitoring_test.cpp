// Unit tests of librdkafka statistics parsing, scaling advice and health rules.
#define BOOST_TEST_MODULE monitoring
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "consumer/consumer_probe.hpp"
#include "consumer_statistics.hpp"
#include "monitoring.hpp"

using kt::detail::advise_scaling;
using kt::detail::assess_health;
using kt::detail::group_load;
using kt::detail::parse_statistics;

namespace {

// The shape of librdkafka's statistics (STATISTICS.md), trimmed to the fields we read.
constexpr const char* statistics_json = R"({
  "name": "rdkafka#consumer-1", "type": "consumer", "ts": 5000000, "rxmsgs": 1200,
  "brokers": {
    "127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "nodeid": 1, "source": "learned",
                         "state": "UP", "rtt": {"avg": 1500, "p99": 3000}},
    "127.0.0.1:9093/2": {"name": "127.0.0.1:9093/2", "nodeid": 2, "source": "learned",
                         "state": "DOWN", "rtt": {"avg": 0}},
    ":0/internal": {"name": ":0/internal", "nodeid": -1, "source": "internal", "state": "UP"},
    "GroupCoordinator": {"name": "GroupCoordinator", "nodeid": -1, "source": "logical",
                         "state": "UP"}
  },
  "topics": {
    "orders": {"partitions": {
      "0": {"partition": 0, "consumer_lag": 40, "fetchq_cnt": 7},
      "1": {"partition": 1, "consumer_lag": -1, "fetchq_cnt": 0},
      "-1": {"partition": -1, "consumer_lag": 999, "fetchq_cnt": 999}
    }},
    "audit": {"partitions": {"0": {"partition": 0, "consumer_lag": 2, "fetchq_cnt": 1}}}
  },
  "cgrp": {"state": "up", "join_state": "steady", "rebalance_cnt": 3}
})";

}  // namespace

BOOST_AUTO_TEST_CASE(statistics_are_reduced_to_lag_queues_brokers_and_partition_counts) {
    const auto s = parse_statistics(statistics_json);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->timestamp_us == 5000000);
    BOOST_TEST(s->rxmsgs == 1200u);
    BOOST_TEST(s->consumer_lag == 42);  // unknown (-1) and the internal -1 partition left out
    BOOST_TEST(s->fetchq_cnt == 8);
    BOOST_TEST(s->join_state == "steady");
    BOOST_TEST(s->broker_threads == 4u);
    BOOST_TEST_REQUIRE(s->brokers.size() == 2u);  // internal and logical ones are not brokers
    BOOST_TEST(s->any_broker_up);
    const auto broker = std::find_if(s->brokers.begin(), s->brokers.end(),
                                     [](const auto& b) { return b.name == "127.0.0.1:9092/1"; });
    BOOST_TEST_REQUIRE((broker != s->brokers.end()));
    BOOST_TEST(broker->rtt_avg_seconds == 0.0015);
    BOOST_TEST(s->topic_partitions.at("orders") == 2u);
    BOOST_TEST(s->topic_partitions.at("audit") == 1u);
}

BOOST_AUTO_TEST_CASE(statistics_without_a_reachable_broker_say_so_and_bad_json_is_refused) {
    const auto s = parse_statistics(
        R"({"ts": 1, "brokers": {"b/1": {"name": "b/1", "source": "learned", "state": "CONNECT"}}})");
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(!s->any_broker_up);
    BOOST_TEST(!parse_statistics("{not json").has_value());
    BOOST_TEST(!parse_statistics("[1, 2]").has_value());
}

BOOST_AUTO_TEST_CASE(rates_come_from_two_reports_of_one_client) {
    auto before = *parse_statistics(R"({"ts": 1000000, "rxmsgs": 100})");
    auto after = *parse_statistics(R"({"ts": 3000000, "rxmsgs": 700})");
    before.consumer_lag = 500;
    after.consumer_lag = 300;
    const auto r = kt::detail::rates_between(before, after);
    BOOST_TEST(r.consume_rate == 300.0);
    BOOST_TEST(r.lag_rate == -100.0);
    // A new client restarts its counters: no rate rather than a negative one.
    const auto restarted = kt::detail::rates_between(after, before);
    BOOST_TEST(restarted.consume_rate == 0.0);
}

BOOST_AUTO_TEST_CASE(
    scaling_recommends_more_members_only_for_growing_lag_and_never_past_partitions) {
    const kt::health_thresholds thresholds{.scale_up_lag = 1000};
    // 12 partitions, 4 held here: 3 members. Lag growing at half the consume rate → ×1.5.
    auto advice = advise_scaling({.group = "g",
                                  .partitions = 12,
                                  .assigned = 4,
                                  .lag = 5000,
                                  .consume_rate = 1000,
                                  .lag_rate = 500},
                                 thresholds);
    BOOST_TEST(advice.members == 3u);
    BOOST_TEST(advice.recommended_members == 5u);  // ceil(3 × 1.5)
    // Growing so fast that the rule would pass the partition count: capped at 12.
    advice = advise_scaling(
        {.partitions = 12, .assigned = 4, .lag = 5000, .consume_rate = 100, .lag_rate = 10000},
        thresholds);
    BOOST_TEST(advice.recommended_members == 12u);
    // Lag high but shrinking: keep.
    advice = advise_scaling(
        {.partitions = 12, .assigned = 4, .lag = 5000, .consume_rate = 1000, .lag_rate = -10},
        thresholds);
    BOOST_TEST(advice.recommended_members == 3u);
    // Already one member per partition: more would idle, and the reason says what helps.
    advice = advise_scaling(
        {.partitions = 2, .assigned = 1, .lag = 5000, .consume_rate = 10, .lag_rate = 50},
        thresholds);
    BOOST_TEST(advice.members == 2u);
    BOOST_TEST(advice.recommended_members == 2u);
    BOOST_TEST(advice.reason.find("add partitions") != std::string::npos);
    // Nothing held here: no estimate.
    advice = advise_scaling({.partitions = 2, .assigned = 0}, thresholds);
    BOOST_TEST(advice.recommended_members == 0u);
}

BOOST_AUTO_TEST_CASE(health_names_each_reason_and_ready_follows_the_lifecycle) {
    const kt::health_thresholds thresholds{.stuck_after = std::chrono::seconds(30), .max_lag = 100};
    kt::metrics_snapshot s;
    BOOST_TEST(!assess_health(s, thresholds, false, false).ready);
    auto report = assess_health(s, thresholds, true, false);
    BOOST_TEST(report.ready);
    BOOST_TEST(report.healthy);
    BOOST_TEST(!assess_health(s, thresholds, true, true).ready);

    s.consumers.push_back({.group = "g", .client = "rdkafka#consumer-1", .consumer_lag = 101});
    s.consumers.push_back(
        {.group = "h", .recovering = true, .recovery_reason = "no broker reachable"});
    s.triggers.push_back({.name = "slow", .oldest_in_flight_seconds = 31});
    s.triggers.push_back({.name = "fine", .oldest_in_flight_seconds = 29});
    report = assess_health(s, thresholds, true, false);
    BOOST_TEST(report.ready);
    BOOST_TEST(!report.healthy);
    BOOST_TEST_REQUIRE(report.reasons.size() == 3u);
    BOOST_TEST(report.reasons[0].find("lags 101") != std::string::npos);
    BOOST_TEST(report.reasons[1].find("no broker reachable") != std::string::npos);
    BOOST_TEST(report.reasons[2].find("trigger 'slow'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_silent_poll_thread_or_a_partition_that_delivers_nothing_is_unhealthy) {
    const kt::health_thresholds thresholds{.stuck_after = std::chrono::seconds(30),
                                           .poll_stall_after = std::chrono::seconds(5)};
    kt::metrics_snapshot s;
    s.consumers.push_back({.group = "g",
                           .client = "rdkafka#consumer-1",
                           .poll_stalled_seconds = 4.9,
                           .delivery_stalled_seconds = 29.9,
                           .stalled_partition = "orders[3]"});
    BOOST_TEST(assess_health(s, thresholds, true, false).healthy);  // both under their threshold

    s.consumers.front().poll_stalled_seconds = 6.3;
    s.consumers.front().delivery_stalled_seconds = 31;
    const auto report = assess_health(s, thresholds, true, false);
    BOOST_TEST(!report.healthy);
    BOOST_TEST_REQUIRE(report.reasons.size() == 2u);
    BOOST_TEST(report.reasons[0] ==
               "consumer rdkafka#consumer-1 of group 'g': its poll thread has not turned for "
               "6.3 s (threshold 5.0 s)");
    BOOST_TEST(report.reasons[1] ==
               "consumer rdkafka#consumer-1 of group 'g': orders[3] has messages waiting but "
               "delivered none for 31 s (threshold 30 s)");
}

BOOST_AUTO_TEST_CASE(the_poll_thread_is_stalled_only_past_its_last_turn_and_any_bounded_step) {
    using namespace std::chrono_literals;
    kt::detail::consumer_probe probe("g");
    const auto t0 = std::chrono::steady_clock::now();
    probe.turned(t0);
    BOOST_TEST(probe.view(t0 + 7s).consumer.poll_stalled_seconds == 7.0);
    probe.blocking_until(t0 + 20s);  // inside a rebalance callback bounded by then
    BOOST_TEST(probe.view(t0 + 19s).consumer.poll_stalled_seconds == 0.0);
    BOOST_TEST(probe.view(t0 + 23s).consumer.poll_stalled_seconds == 3.0);
    probe.turned(t0 + 30s);
    BOOST_TEST(probe.view(t0 + 30s).consumer.poll_stalled_seconds == 0.0);
    probe.delivery_stalled(2500ms, "orders[1]");
    const auto view = probe.view(t0 + 30s);
    BOOST_TEST(view.consumer.delivery_stalled_seconds == 2.5);
    BOOST_TEST(view.consumer.stalled_partition == "orders[1]");
}
