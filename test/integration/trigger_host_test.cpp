// Integration tests of trigger_host on a Kafka (embedded cluster, or $KT_BOOTSTRAP).
#define BOOST_TEST_MODULE trigger_host
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/kt.hpp>

#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::commit_host;
using kt_test::handled_by;
using kt_test::handled_log;
using kt_test::kafka;
using kt_test::recording;
using kt_test::run_coro;
using kt_test::stop_host;
using kt_test::sum;
using kt_test::two_shards;
using kt_test::wait_until;

BOOST_AUTO_TEST_CASE(
    n_triggers_on_one_topic_share_one_consumer_and_each_handle_every_message_once) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("share", 4, 400);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    for (const char* name : {"a", "b", "c"})
        host.add_trigger({.name = name, .topic = topic, .consumer = k.consumer(group)},
                         recording(log, name));
    BOOST_TEST(host.consumer_count() == 1u);
    host.start();

    BOOST_TEST_REQUIRE(wait_until([&] {
        return log.distinct("a") == 400 && log.distinct("b") == 400 && log.distinct("c") == 400;
    }));
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
    BOOST_TEST(host.consumer_count() == 0u);
    // After a clean stop every partition is committed at its high watermark.
    BOOST_TEST(sum(k.admin().committed(group, topic)) == 400);
    BOOST_TEST(k.admin().committed(group, topic) == k.admin().high_watermarks(topic));
}

BOOST_AUTO_TEST_CASE(a_slow_trigger_holds_back_the_committed_offset_until_it_completes) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("slow", 1, 10);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 100ms}};
    handled_log log;
    std::atomic<bool> released{false};
    host.add_trigger({.name = "fast", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "fast"));
    host.add_trigger({.name = "slow", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         asio::steady_timer timer(co_await asio::this_coro::executor);
                         while (m.offset() == 3 && !released) {
                             timer.expires_after(5ms);
                             co_await timer.async_wait(asio::use_awaitable);
                         }
                         log.add("slow", m);
                     });
    host.start();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return log.distinct("fast") == 10 && log.distinct("slow") == 3; }));
    commit_host(rt, host);
    // Offsets 0-2 are done by both triggers; 3 is still running in "slow".
    BOOST_TEST(k.admin().committed(group, topic)[0] == 3);

    released = true;
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("slow") == 10; }));
    BOOST_TEST_REQUIRE(wait_until([&] {
        commit_host(rt, host);
        return k.admin().committed(group, topic)[0] == 10;
    }));
    BOOST_TEST(host.committed().at(topic).at(0) == 10);
    stop_host(rt, host);
}

BOOST_AUTO_TEST_CASE(configs_differing_only_in_sasl_password_do_not_share) {
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    auto config = [](const char* password) {
        return kt::consumer_config{{"bootstrap.servers", "127.0.0.1:1"},
                                   {"group.id", "g"},
                                   {"security.protocol", "sasl_plaintext"},
                                   {"sasl.mechanisms", "PLAIN"},
                                   {"sasl.username", "u"},
                                   {"sasl.password", password}};
    };
    auto noop = [](const kt::message&) -> asio::awaitable<void> { co_return; };
    host.add_trigger({.name = "a", .topic = "t", .consumer = config("one")}, noop);
    host.add_trigger({.name = "b", .topic = "t", .consumer = config("two")}, noop);
    BOOST_TEST(host.consumer_count() == 2u);
    host.add_trigger({.name = "c", .topic = "u", .consumer = config("one")}, noop);
    BOOST_TEST(host.consumer_count() == 2u);
}

BOOST_AUTO_TEST_CASE(sharing_per_topic_and_off_give_the_documented_consumer_counts) {
    kt::consumer_config config{{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "g"}};
    auto noop = [](const kt::message&) -> asio::awaitable<void> { co_return; };
    for (auto [mode, expected] :
         {std::pair{kt::sharing::per_group, 1u}, std::pair{kt::sharing::per_topic, 2u},
          std::pair{kt::sharing::off, 3u}}) {
        kt::runtime rt{two_shards};
        kt::trigger_host host{rt, {.sharing = mode}};
        host.add_trigger({.name = "a", .topic = "t1", .consumer = config}, noop);
        host.add_trigger({.name = "b", .topic = "t1", .consumer = config}, noop);
        host.add_trigger({.name = "c", .topic = "t2", .consumer = config}, noop);
        BOOST_TEST(host.consumer_count() == expected);
    }
}

BOOST_AUTO_TEST_CASE(bad_config_is_refused_by_name_before_anything_starts_and_never_shows_secrets) {
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    auto noop = [](const kt::message&) -> asio::awaitable<void> { co_return; };
    auto expect_error = [&](kt::consumer_config config, const std::string& property) {
        config.set("sasl.password", "hunter2");
        try {
            host.add_trigger({.name = "bad", .topic = "t", .consumer = config}, noop);
            BOOST_FAIL("expected kt::config_error for " << property);
        } catch (const kt::config_error& e) {
            BOOST_TEST(e.property() == property);
            BOOST_TEST(std::string(e.what()).find(property) != std::string::npos);
            BOOST_TEST(std::string(e.what()).find("hunter2") == std::string::npos);
        }
        BOOST_TEST(host.consumer_count() == 0u);
    };
    expect_error({{"bootstrap.servers", "x:1"}, {"group.id", "g"}, {"no.such.property", "1"}},
                 "no.such.property");
    expect_error({{"bootstrap.servers", "x:1"}, {"group.id", "g"}, {"session.timeout.ms", "soon"}},
                 "session.timeout.ms");
    expect_error({{"bootstrap.servers", "x:1"}}, "group.id");
    expect_error({{"group.id", "g"}}, "bootstrap.servers");
    expect_error({{"bootstrap.servers", "x:1"}, {"group.id", "g"}, {"enable.auto.commit", "true"}},
                 "enable.auto.commit");
}

// Stall fix: trigger_host::start -> shared_consumer::start moved the consumer to "running", then
// kafka_client::open threw (rd_kafka_new refused the unreadable ssl.ca.location);
// trigger_host::stop
// -> shared_consumer::async_stop queued a stop command for a poll thread that never started and
// waited forever (the destructor's stop_blocking for its 25 s bound).
BOOST_AUTO_TEST_CASE(a_client_librdkafka_refuses_fails_start_and_the_host_still_stops_at_once) {
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    auto noop = [](const kt::message&) -> asio::awaitable<void> { co_return; };
    host.add_trigger({.name = "ssl",
                      .topic = "t",
                      .consumer = {{"bootstrap.servers", "127.0.0.1:1"},
                                   {"group.id", "g-unreadable-ca"},
                                   {"security.protocol", "ssl"},
                                   {"ssl.ca.location", "/nonexistent/ca.pem"}}},
                     noop);
    BOOST_CHECK_THROW(host.start(), kt::config_error);
    run_coro(
        rt.shard(0), [&]() -> asio::awaitable<void> { co_await host.stop(); }, 10s);
    BOOST_TEST(host.consumer_count() == 0u);
}

BOOST_AUTO_TEST_CASE(a_throwing_handler_does_not_disturb_other_triggers) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("throw", 2, 90);
    k.create_topic(topic + ".dlq", 1);  // failed messages go to the default dead letter topic

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "thrower", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         log.add("thrower", m);
                         if (m.offset() % 3 == 0) throw std::runtime_error("boom");
                         co_return;
                     });
    host.add_trigger({.name = "calm", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "calm"));
    host.start();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return log.distinct("calm") == 90 && log.distinct("thrower") == 90; }));
    stop_host(rt, host);
    std::uint64_t failed = 0, dead_lettered = 0, calm_failed = 0, calm_handled = 0;
    for (const auto& s : host.stats()) {
        if (s.name == "thrower") failed = s.failed, dead_lettered = s.dead_lettered;
        if (s.name == "calm") calm_failed = s.failed, calm_handled = s.handled;
    }
    std::uint64_t expected_failures = 0;
    for (auto [p, high] : k.admin().high_watermarks(topic))
        for (std::int64_t o = 0; o < high; ++o) expected_failures += o % 3 == 0;
    BOOST_TEST(failed == expected_failures);
    BOOST_TEST(dead_lettered == expected_failures);
    BOOST_TEST(calm_failed == 0u);
    BOOST_TEST(calm_handled == 90u);
    BOOST_TEST(log.duplicates() == 0u);
}

BOOST_AUTO_TEST_CASE(the_last_release_closes_the_consumer_and_leaves_no_thread_behind) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("release", 2, 20);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    const unsigned threads_before = kt::process_thread_count();
    host.add_trigger({.name = "only", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "only"));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("only") == 20; }));
    BOOST_TEST(kt::process_thread_count() > threads_before);
    run_coro(rt.shard(0), [&]() -> asio::awaitable<void> { co_await host.remove_trigger("only"); });
    BOOST_TEST(host.consumer_count() == 0u);
    BOOST_TEST(wait_until([&] { return kt::process_thread_count() == threads_before; }, 5s));
    BOOST_TEST(sum(k.admin().committed(group, topic)) == 20);
}

BOOST_AUTO_TEST_CASE(adding_triggers_at_runtime_loses_and_repeats_nothing_for_the_others) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("runtime-add", 3);
    const auto other_topic = k.new_topic("runtime-add-other", 2);
    const auto group = k.unique("runtime-add");
    k.produce(topic, 150);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "first", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "first"));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("first") == 150; }));

    // Same topic (joins the running consumer) and another topic (changes its subscription).
    host.add_trigger({.name = "second", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "second"));
    host.add_trigger({.name = "third", .topic = other_topic, .consumer = k.consumer(group)},
                     recording(log, "third"));
    BOOST_TEST(host.consumer_count() == 1u);
    int produced = 150;
    // Produce one at a time until "second" is live, so its first message is known to exist.
    while (handled_by(host, "second") == 0 && produced < 1000) {
        k.produce(topic, 1, 100, produced++);
        wait_until([&] { return handled_by(host, "second") > 0; }, 200ms);
    }
    k.produce(topic, 150, 100, produced);
    produced += 150;
    k.produce(other_topic, 50);
    BOOST_TEST_REQUIRE(wait_until([&] {
        return log.distinct("first") == static_cast<std::size_t>(produced) &&
               log.distinct("third") == 50;
    }));
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
    BOOST_TEST(log.distinct("second") >= 150u);
    BOOST_TEST(sum(k.admin().committed(group, topic)) == produced);
}

BOOST_AUTO_TEST_CASE(a_missing_topic_waits_and_does_not_disturb_its_consumer) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("present", 2);
    const auto missing = k.unique("missing");
    const auto group = k.unique("missing");
    k.produce(topic, 30);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "present", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "present"));
    host.add_trigger({.name = "waiting", .topic = missing, .consumer = k.consumer(group)},
                     recording(log, "waiting"));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("present") == 30; }));
    BOOST_TEST(log.distinct("waiting") == 0u);
    // Created later, the topic is picked up by the metadata refresh and consumed from its start.
    k.create_topic(missing, 2);
    k.produce(missing, 20);
    BOOST_TEST(wait_until([&] { return log.distinct("waiting") == 20; }),
               "the waiting trigger consumed the topic once it existed (" << log.distinct("waiting")
                                                                          << " of 20)");
    k.produce(topic, 10, 100, 30);
    BOOST_TEST(wait_until([&] { return log.distinct("present") == 40; }),
               "its consumer went on consuming the other topic");
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
}

BOOST_AUTO_TEST_CASE(a_subscription_delivers_in_order_and_commits_what_was_completed) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("pull", 1, 25);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.drain_timeout = 500ms}};
    auto sub = host.subscribe({.name = "puller", .topic = topic, .consumer = k.consumer(group)});
    host.start();
    run_coro(rt.shard(1), [&]() -> asio::awaitable<void> {
        std::int64_t expected = 0;
        for (int i = 0; i < 20; ++i) {
            auto m = co_await sub.next();
            BOOST_TEST(m.offset() == expected++);
            BOOST_TEST(m.key().starts_with("key-"));
            sub.complete(m);
        }
        co_await sub.commit();
    });
    BOOST_TEST_REQUIRE(wait_until([&] {
        commit_host(rt, host);
        return k.admin().committed(group, topic)[0] == 20;
    }));
    stop_host(rt, host);
    // Five delivered, never completed: the commit stays at 20 and they come again next time.
    BOOST_TEST(k.admin().committed(group, topic)[0] == 20);
}

BOOST_AUTO_TEST_CASE(secrets_never_reach_the_logs_even_with_librdkafka_debug_output) {
    auto& k = kafka::instance();
    std::mutex mutex;
    std::vector<std::string> lines;
    kt::set_log_level(kt::log_level::debug);
    kt::set_log_sink([&](kt::log_level, std::string_view line) {
        std::lock_guard lock(mutex);
        lines.emplace_back(line);
    });
    {
        kt::runtime rt{two_shards};
        kt::trigger_host host{rt, {.drain_timeout = 200ms}};
        auto config = k.consumer(k.unique("secret"));
        config.set("security.protocol", "sasl_plaintext");
        config.set("sasl.mechanisms", "PLAIN");
        config.set("sasl.username", "svc");
        config.set("sasl.password", "hunter2-secret-value");
        config.set("debug", "conf,security,broker,cgrp");
        host.add_trigger({.name = "s", .topic = k.unique("secret-topic"), .consumer = config},
                         [](const kt::message&) -> asio::awaitable<void> { co_return; });
        host.start();
        wait_until(
            [&] {
                std::lock_guard lock(mutex);
                return lines.size() > 50;
            },
            5s);
        stop_host(rt, host);
    }
    kt::set_log_sink({});
    kt::set_log_level(kt::log_level::info);
    std::lock_guard lock(mutex);
    // librdkafka's config dump came through our sink, so the secret had a chance to leak.
    BOOST_TEST(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
        return l.find("sasl.password") != std::string::npos;
    }));
    for (const auto& line : lines)
        BOOST_TEST_REQUIRE(line.find("hunter2-secret-value") == std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(triggers_run_on_an_application_io_context_and_stop_gracefully_with_it) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("external", 2, 40);

    asio::io_context application;  // an existing async server's context
    kt::runtime rt{application};
    BOOST_TEST(rt.shard_count() == 1u);
    kt::trigger_host host{rt};
    handled_log log;
    std::atomic<bool> on_application_thread{true};
    host.add_trigger({.name = "app", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         on_application_thread =
                             on_application_thread &&
                             application.get_executor().running_in_this_thread();
                         log.add("app", m);
                         co_return;
                     });
    host.start();
    std::thread stopper([&] {
        wait_until([&] { return log.distinct("app") == 40; });
        rt.request_stop();
    });
    rt.run_until_signal();  // runs `application` here; the stop hook drains and commits
    stopper.join();
    BOOST_TEST(log.distinct("app") == 40u);
    BOOST_TEST(on_application_thread.load());
    BOOST_TEST(host.consumer_count() == 0u);
    BOOST_TEST(sum(k.admin().committed(group, topic)) == 40);
}

BOOST_AUTO_TEST_CASE(a_trigger_added_during_the_first_group_join_still_gets_its_messages) {
    auto& k = kafka::instance();
    const auto [first_topic, group] = k.topic_with_data("join-first", 2, 30);
    const auto second_topic = k.new_topic("join-second", 2);
    k.produce(second_topic, 30);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "first", .topic = first_topic, .consumer = k.consumer(group)},
                     recording(log, "first"));
    host.start();
    // The consumer exists and has joined nothing yet (the embedded cluster's first join takes
    // ~3 s): the second trigger arrives while that join is under way.
    BOOST_TEST_REQUIRE(wait_until([&] { return host.consumer_count() == 1; }));
    const auto consumers = host.metrics().consumers;
    BOOST_TEST_REQUIRE(consumers.size() == 1u);
    BOOST_TEST_REQUIRE(consumers.front().assigned_partitions == 0u,
                       "the first join is still under way when the second trigger is added");
    host.add_trigger({.name = "second", .topic = second_topic, .consumer = k.consumer(group)},
                     recording(log, "second"));
    BOOST_TEST(
        wait_until([&] { return log.distinct("first") == 30 && log.distinct("second") == 30; }));
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
}

namespace {

const kt::trigger_metrics* find_trigger(const kt::metrics_snapshot& s, const std::string& name) {
    for (const auto& t : s.triggers)
        if (t.name == name) return &t;
    return nullptr;
}

// The result points into the snapshot: never ask a temporary one.
const kt::trigger_metrics* find_trigger(kt::metrics_snapshot&&, const std::string&) = delete;

std::int64_t committed_in(const kt::trigger_metrics& t) {
    std::int64_t total = 0;
    for (const auto& p : t.partitions) total += std::max<std::int64_t>(0, p.committed);
    return total;
}

}  // namespace

BOOST_AUTO_TEST_CASE(metrics_count_what_was_handled_and_show_partitions_lag_and_librdkafka_stats) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("metrics", 3, 300);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 100ms, .statistics_interval = 200ms}};
    handled_log log;
    // Ignored without SASL, but a secret all the same: it must not show in any rendering.
    const std::string secret = "metrics-secret-5eb1";
    auto config = k.consumer(group).set("sasl.password", secret);
    host.add_trigger({.name = "fast", .topic = topic, .consumer = config}, recording(log, "fast"));
    host.add_trigger({.name = "failing",
                      .topic = topic,
                      .consumer = config,
                      .retry = {.max_attempts = 2, .initial_backoff = 1ms},
                      .dead_letter = {.enabled = false}},
                     [](const kt::message& m) -> asio::awaitable<void> {
                         if (m.offset() % 10 == 0) throw std::runtime_error("every tenth");
                         co_return;
                     });
    BOOST_TEST(!host.health().ready);  // not started
    host.start();

    // Partition figures refresh every ~500 ms and statistics every 200 ms: wait for both.
    kt::metrics_snapshot s;
    BOOST_TEST_REQUIRE(wait_until([&] {
        s = host.metrics();
        const auto* fast = find_trigger(s, "fast");
        return fast && fast->handled == 300 && committed_in(*fast) == 300 && !s.consumers.empty() &&
               s.consumers.front().rxmsgs >= 300;
    }));
    const auto& fast = *find_trigger(s, "fast");
    const auto& failing = *find_trigger(s, "failing");
    BOOST_TEST(fast.group == group);
    BOOST_TEST(fast.handler_duration.count == 300u);
    BOOST_TEST(fast.in_flight == 0u);
    BOOST_TEST(fast.oldest_in_flight_seconds == 0.0);
    BOOST_TEST(fast.partitions.size() == 3u);
    // Our figures against the broker's, read by another client.
    const auto high = k.admin().high_watermarks(topic);
    const auto broker_committed = k.admin().committed(group, topic);
    BOOST_TEST(broker_committed == high);
    for (const auto& p : fast.partitions) {
        BOOST_TEST(p.topic == topic);
        BOOST_TEST(p.committed == broker_committed.at(p.partition));
        BOOST_TEST(p.high_watermark == high.at(p.partition));
        BOOST_TEST(p.lag == 0);
        BOOST_TEST(p.backlog == 0u);
        BOOST_TEST(!p.paused);
    }
    // Offsets 0, 10, ... of each partition fail twice (one retry) and are dropped.
    std::uint64_t tenth = 0;
    for (auto [partition, end] : high) tenth += static_cast<std::uint64_t>((end + 9) / 10);
    BOOST_TEST(failing.failed == tenth);
    BOOST_TEST(failing.retried == tenth);
    BOOST_TEST(failing.handled == 300 - tenth);
    BOOST_TEST(failing.handler_duration.count == 300u);

    BOOST_TEST_REQUIRE(s.consumers.size() == 1u);
    const auto& consumer = s.consumers.front();
    BOOST_TEST(consumer.group == group);
    BOOST_TEST(consumer.triggers == 2u);
    BOOST_TEST(consumer.assigned_partitions == 3u);
    BOOST_TEST(consumer.rebalances >= 1u);
    BOOST_TEST(consumer.rebalance_seconds_total > 0.0);
    BOOST_TEST(!consumer.recovering);
    BOOST_TEST(!consumer.brokers.empty());
    BOOST_TEST(consumer.threads > 2u);
    BOOST_TEST(consumer.client.find("consumer") != std::string::npos);
    BOOST_TEST(s.process_threads >= consumer.threads);
    BOOST_TEST_REQUIRE(s.scaling.size() == 1u);
    BOOST_TEST(s.scaling.front().partitions == 3u);
    BOOST_TEST(s.scaling.front().members == 1u);
    BOOST_TEST(s.scaling.front().recommended_members == 1u);
    BOOST_TEST(s.health.ready);
    BOOST_TEST(kt::to_prometheus(s).find(secret) == std::string::npos);
    BOOST_TEST(kt::to_json(s).find(secret) == std::string::npos);
    BOOST_TEST(kt::to_prometheus(s).find("kt_trigger_handled_total{trigger=\"fast\"") !=
               std::string::npos);
    BOOST_TEST(s.health.healthy,
               "reasons: " << (s.health.reasons.empty() ? "" : s.health.reasons[0]));
    stop_host(rt, host);
    BOOST_TEST(!host.health().ready);
}

BOOST_AUTO_TEST_CASE(a_paused_trigger_starts_nothing_until_resumed_while_others_go_on) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("pause", 2);
    const auto other_topic = k.new_topic("pause-other", 2);
    const auto group = k.unique("pause");

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    handled_log log;
    host.add_trigger({.name = "paused", .topic = topic, .consumer = k.consumer(group)},
                     recording(log, "paused"));
    host.add_trigger({.name = "other", .topic = other_topic, .consumer = k.consumer(group)},
                     recording(log, "other"));
    BOOST_TEST(!host.pause_trigger("no-such-trigger"));
    BOOST_TEST(host.pause_trigger("paused"));
    host.start();
    k.produce(topic, 100);
    k.produce(other_topic, 100);
    BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("other") == 100; }));
    // The paused trigger's messages arrived (its backlog holds all 100) but none started.
    kt::metrics_snapshot snapshot;
    std::uint64_t waiting = 0;
    BOOST_TEST(
        wait_until([&] {
            snapshot = host.metrics();
            const auto* paused = find_trigger(snapshot, "paused");
            waiting = 0;
            for (const auto& p : paused ? paused->partitions : decltype(paused->partitions){})
                waiting += p.backlog;
            return waiting == 100;
        }),
        "the paused trigger's backlog holds its 100 messages (" << waiting << ")");
    BOOST_TEST(log.distinct("paused") == 0u);
    const auto* paused = find_trigger(snapshot, "paused");
    BOOST_TEST_REQUIRE(paused);
    BOOST_TEST(paused->paused);
    BOOST_TEST(host.resume_trigger("paused"));
    BOOST_TEST(wait_until([&] { return log.distinct("paused") == 100; }));
    stop_host(rt, host);
    BOOST_TEST(log.duplicates() == 0u);
    BOOST_TEST(sum(k.admin().committed(group, topic)) == 100);
}

BOOST_AUTO_TEST_CASE(a_handler_running_past_the_stuck_threshold_makes_the_host_unhealthy) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("stuck", 1, 1);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.health = {.stuck_after = 200ms}}};
    std::atomic<bool> release{false};
    host.add_trigger({.name = "stuck", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message&) -> asio::awaitable<void> {
                         asio::steady_timer timer(co_await asio::this_coro::executor);
                         while (!release) {
                             timer.expires_after(10ms);
                             co_await timer.async_wait(asio::use_awaitable);
                         }
                     });
    host.start();
    kt::health_report health;
    BOOST_TEST(wait_until([&] {
        health = host.health();
        return !health.healthy && health.ready;
    }));
    BOOST_TEST_REQUIRE(health.reasons.size() == 1u);
    BOOST_TEST(health.reasons.front().find("trigger 'stuck'") != std::string::npos);
    const auto snapshot = host.metrics();
    const auto* stuck = find_trigger(snapshot, "stuck");
    BOOST_TEST_REQUIRE(stuck);
    BOOST_TEST(stuck->in_flight == 1u);
    BOOST_TEST(stuck->oldest_in_flight_seconds > 0.2);
    release = true;
    BOOST_TEST(wait_until([&] { return host.health().healthy; }));
    stop_host(rt, host);
}

// A partition held back behind a handler that never finishes delivers nothing while messages
// wait beyond it: health says which partition, beside the stuck handler, and recovers after.
BOOST_AUTO_TEST_CASE(
    a_partition_that_delivers_nothing_while_messages_wait_makes_the_host_unhealthy) {
    auto& k = kafka::instance();
    // More than one fetch batch (128), so some messages stay behind the held-back partition.
    const auto [topic, group] = k.topic_with_data("stall", 1, 1000);

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.health = {.stuck_after = 300ms}}};
    std::atomic<bool> release{false};
    std::atomic<int> handled{0};
    host.add_trigger(
        {.name = "held", .topic = topic, .consumer = k.consumer(group), .max_backlog = 4},
        [&](const kt::message&) -> asio::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            while (!release) {
                timer.expires_after(10ms);
                co_await timer.async_wait(asio::use_awaitable);
            }
            ++handled;
        });
    host.start();
    const auto stalled = fmt::format("{}[0] has messages waiting but delivered none", topic);
    kt::health_report health;
    BOOST_TEST(wait_until([&] {
        health = host.health();
        return std::any_of(health.reasons.begin(), health.reasons.end(),
                           [&](const auto& r) { return r.find(stalled) != std::string::npos; });
    }));
    const auto snapshot = host.metrics();
    BOOST_TEST_REQUIRE(snapshot.consumers.size() == 1u);
    BOOST_TEST(snapshot.consumers.front().delivery_stalled_seconds > 0.3);
    BOOST_TEST(snapshot.consumers.front().stalled_partition == topic + "[0]");
    BOOST_TEST(snapshot.consumers.front().poll_stalled_seconds < 5.0);
    release = true;
    BOOST_TEST(wait_until([&] { return handled == 1000 && host.health().healthy; }));
    stop_host(rt, host);
}

BOOST_AUTO_TEST_CASE(
    eager_strategies_hand_partitions_over_on_join_and_leave_losing_and_repeating_nothing) {
    auto& k = kafka::instance();
    for (const char* strategy : {"range", "roundrobin"}) {
        BOOST_TEST_CONTEXT("partition.assignment.strategy=" << strategy) {
            const auto topic = k.new_topic("eager", 4);
            const auto group = k.unique("eager");
            auto config = k.consumer(group)
                              .set("partition.assignment.strategy", strategy)
                              .set("heartbeat.interval.ms", "500");
            handled_log log;
            auto covered = [&] {
                for (auto [partition, high] : k.admin().high_watermarks(topic))
                    for (std::int64_t offset = 0; offset < high; ++offset)
                        if (!log.has("first", partition, offset) &&
                            !log.has("second", partition, offset))
                            return false;
                return true;
            };
            // Membership changes wait for the periodic commit: the embedded cluster refuses
            // commits once a rebalance began, even in an eager revocation.
            auto all_committed = [&] {
                return wait_until([&] {
                    return k.admin().committed(group, topic) == k.admin().high_watermarks(topic);
                });
            };
            auto assigned = [](const kt::trigger_host& host) {
                const auto consumers = host.consumer_stats();
                return consumers.empty() ? std::size_t{0} : consumers.front().assigned_partitions;
            };
            kt::runtime rt{two_shards};
            kt::trigger_host first{rt, {.commit_interval = 100ms}};
            first.add_trigger({.name = "first", .topic = topic, .consumer = config},
                              recording(log, "first"));
            first.start();
            k.produce(topic, 200, 100, 0);
            BOOST_TEST_REQUIRE(wait_until([&] { return log.distinct("first") == 200; }));
            BOOST_TEST_REQUIRE(all_committed());
            {
                kt::trigger_host second{rt, {.commit_interval = 100ms}};
                second.add_trigger({.name = "second", .topic = topic, .consumer = config},
                                   recording(log, "second"));
                second.start();
                // Eager: every partition is revoked from `first`, then the four are split.
                BOOST_TEST(
                    wait_until([&] { return assigned(first) == 2 && assigned(second) == 2; }, 60s),
                    "split " << assigned(first) << " + " << assigned(second));
                k.produce(topic, 200, 100, 200);
                BOOST_TEST(wait_until(covered), "every message handled by one of the two");
                BOOST_TEST(log.distinct("second") > 0u);
                BOOST_TEST_REQUIRE(all_committed());
                stop_host(rt, second);
            }
            BOOST_TEST(wait_until([&] { return assigned(first) == 4; }, 60s),
                       "first holds all four again");
            k.produce(topic, 100, 100, 400);
            BOOST_TEST(wait_until(covered), "every message handled after the leave");
            stop_host(rt, first);
            BOOST_TEST(k.admin().committed(group, topic) == k.admin().high_watermarks(topic));
            BOOST_TEST(log.duplicates() == 0u);
        }
    }
}
