// Handler semantics on a Kafka (embedded cluster, or $KT_BOOTSTRAP): key ordering, retries, dead
// letters, batches, the awaitable producer and at-most-once.
#define BOOST_TEST_MODULE handler_semantics
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/kt.hpp>

#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"
#include "log_capture.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::kafka;
using kt_test::run_coro;
using kt_test::stats_of;
using kt_test::stop_host;
using kt_test::two_shards;
using kt_test::wait_until;

namespace {

int value_index(const kt::message& m) {
    return std::stoi(std::string(m.value().substr(std::string_view("value-").size())));
}

asio::awaitable<void> sleep_ms(int ms) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(asio::use_awaitable);
}

/// A record read back, copied out (a kt::message must not outlive its host).
struct read_record {
    std::optional<std::string> key, value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    std::string header(const std::string& name) const {
        for (const auto& [n, v] : headers)
            if (n == name) return v.value_or("");
        return "?";
    }
};

/// Reads `count` records of `topic` from the beginning through a pull subscription.
std::vector<read_record> read_back(const std::string& topic, std::size_t count) {
    auto& k = kafka::instance();
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    auto sub = host.subscribe(
        {.name = "reader", .topic = topic, .consumer = k.consumer(k.unique("reader"))});
    host.start();
    std::vector<read_record> got;
    run_coro(rt.shard(0), [&]() -> asio::awaitable<void> {
        while (got.size() < count) {
            auto m = co_await sub.next();
            read_record r;
            if (m.has_key()) r.key = std::string(m.key());
            if (m.has_value()) r.value = std::string(m.value());
            for (const auto& [name, value] : m.headers())
                r.headers.emplace_back(name,
                                       value ? std::optional<std::string>(*value) : std::nullopt);
            got.push_back(std::move(r));
            sub.complete(m);
        }
    });
    stop_host(rt, host);
    return got;
}

}  // namespace

BOOST_AUTO_TEST_CASE(key_ordering_keeps_each_keys_order_with_1000_keys_and_random_delays) {
    auto& k = kafka::instance();
    auto topic = k.new_topic("keys", 2);
    k.produce(topic, 6000, 1000);
    const auto group = k.unique("keys");

    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::map<std::string, std::vector<int>> order;  // key → value indices in handling order
    std::atomic<int> running{0}, most_running{0};
    host.add_trigger({.name = "by-key",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .ordering = kt::ordering::key,
                      .max_in_flight = 256},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         const int now = ++running;
                         int seen = most_running.load();
                         while (now > seen && !most_running.compare_exchange_weak(seen, now)) {
                         }
                         thread_local std::minstd_rand random(std::random_device{}());
                         co_await sleep_ms(static_cast<int>(random() % 4));
                         --running;
                         std::lock_guard lock(mutex);
                         order[std::string(m.key())].push_back(value_index(m));
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "by-key").handled == 6000; }, 60s));
    stop_host(rt, host);

    BOOST_TEST(order.size() == 1000u);
    std::size_t out_of_order = 0;
    for (const auto& [key, indices] : order)
        out_of_order += !std::is_sorted(indices.begin(), indices.end()) || indices.size() != 6;
    BOOST_TEST(out_of_order == 0u);
    // Different keys really ran concurrently (otherwise this test proves nothing).
    BOOST_TEST(most_running.load() > 8);
}

// key_of: a header orders the messages (a tenant id), not the record key, which is unique here
// (ordered by it, every message could run at once). Messages without the header, and those the
// extractor throws for, share their partition's lane of messages without a key.
BOOST_AUTO_TEST_CASE(a_key_extractor_orders_by_a_header_and_a_throwing_one_loses_nothing) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("tenants", 2);
    constexpr int count = 2000, tenants = 20;
    const auto tenant_of = [](int i) {
        return i % 10 == 9 ? std::string() : fmt::format("t{}", i % tenants);
    };
    {
        kt::producer p({{"bootstrap.servers", k.bootstrap()}, {"linger.ms", "1"}});
        for (int i = 0; i < count; ++i) {
            kt::record r{.topic = topic,
                         .key = fmt::format("unique-{}", i),
                         .value = std::to_string(i),
                         .partition = i % 2};
            if (!tenant_of(i).empty()) r.headers.push_back({"tenant", tenant_of(i)});
            p.produce(std::move(r));
        }
        BOOST_TEST_REQUIRE(p.flush(30s));
    }
    const auto log_mark = kt_test::log_capture::instance().mark();
    // Before the host: a failed check leaves the host running until the end of the scope.
    const auto by_tenant = kt::key_from_header("tenant");
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::map<std::string, std::vector<int>> order;  // "<partition>/<tenant>" → values in order
    std::map<std::string, int> running_per_lane;
    int most_running = 0, running = 0, lanes_overlapped = 0;
    host.add_trigger({.name = "by-tenant",
                      .topic = topic,
                      .consumer = k.consumer(k.unique("tenants")),
                      .ordering = kt::ordering::key,
                      .key_of =
                          [&](const kt::message& m) {
                              auto tenant = by_tenant(m);
                              if (tenant == "t13") throw std::runtime_error("no tenant 13");
                              return tenant;
                          },
                      .max_in_flight = 64},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         auto tenant = std::string(m.header("tenant").value_or(""));
                         if (tenant == "t13") tenant.clear();  // the extractor threw: no key
                         const auto lane = fmt::format("{}/{}", m.partition(), tenant);
                         {
                             std::lock_guard lock(mutex);
                             lanes_overlapped += ++running_per_lane[lane] > 1;
                             most_running = std::max(most_running, ++running);
                         }
                         co_await sleep_ms(1);
                         std::lock_guard lock(mutex);
                         --running_per_lane[lane];
                         --running;
                         order[lane].push_back(std::stoi(std::string(m.value())));
                     });
    host.start();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return stats_of(host, "by-tenant").handled == count; }, 60s),
        "handled " << stats_of(host, "by-tenant").handled << " of " << count);
    stop_host(rt, host);

    BOOST_TEST(lanes_overlapped == 0, "two messages of one tenant ran at once");
    std::size_t handled = 0, out_of_order = 0;
    for (const auto& [lane, values] : order) {
        handled += values.size();
        out_of_order += !std::is_sorted(values.begin(), values.end());
    }
    BOOST_TEST(handled == static_cast<std::size_t>(count));
    BOOST_TEST(out_of_order == 0u);
    // Partition 0 has the 10 even tenants; partition 1 the odd ones but t9 and t19 (i % 10 == 9:
    // no header) and t13 (thrown for), which share its keyless lane. Tenants ran concurrently...
    BOOST_TEST(order.size() == 10u + 7u + 1u);
    BOOST_TEST(most_running > 4);
    // ...and the extractor's failure was logged, once.
    BOOST_TEST(
        kt_test::log_capture::instance().since(log_mark, {"'by-tenant'", "key_of failed"}).size() ==
        1u);
}

BOOST_AUTO_TEST_CASE(the_awaitable_producer_resumes_on_the_callers_executor_with_the_offset) {
    auto& k = kafka::instance();
    auto topic = k.new_topic("produce", 3);
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    const kt::producer_config config{{"bootstrap.servers", k.bootstrap()}};
    auto out = host.shared_producer(config);
    BOOST_TEST(out == host.shared_producer(config));
    BOOST_TEST(out !=
               host.shared_producer({{"bootstrap.servers", k.bootstrap()}, {"linger.ms", "1"}}));

    run_coro(rt.shard(1), [&]() -> asio::awaitable<void> {
        const auto thread = std::this_thread::get_id();
        kt::record record{.topic = topic,
                          .key = std::string("k"),
                          .value = std::string("v"),
                          .headers = {{"h1", std::string("x")}, {"h2", std::nullopt}},
                          .partition = 2};
        auto first = co_await out->send(record);
        BOOST_TEST((std::this_thread::get_id() == thread));
        BOOST_TEST(first.topic == topic);
        BOOST_TEST(first.partition == 2);
        BOOST_TEST(first.offset == 0);
        kt::record nulls{.topic = topic, .partition = 2};  // null key and value
        auto second = co_await out->send(nulls);
        BOOST_TEST(second.offset == 1);

        bool refused = false;
        try {
            kt::record huge{.topic = topic, .value = std::string(2'000'000, 'x')};
            co_await out->send(huge);
        } catch (const kt::kafka_error& e) {
            refused = std::string(e.what()).find("value 2000000 bytes") != std::string::npos;
        }
        BOOST_TEST(refused);
    });

    auto records = read_back(topic, 2);
    BOOST_TEST_REQUIRE(records.size() == 2u);
    BOOST_TEST(records[0].key.value_or("") == "k");
    BOOST_TEST(records[0].value.value_or("") == "v");
    BOOST_TEST(records[0].header("h1") == "x");
    BOOST_TEST_REQUIRE(records[0].headers.size() == 2u);
    BOOST_TEST(!records[0].headers[1].second.has_value());  // a null header value stays null
    BOOST_TEST(!records[1].key.has_value());
    BOOST_TEST(!records[1].value.has_value());
    stop_host(rt, host);
}

BOOST_AUTO_TEST_CASE(a_failing_handler_is_retried_with_growing_backoff_until_it_succeeds) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("retry", 1, 10);
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> attempts;  // of offset 5
    host.add_trigger({.name = "flaky",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .retry = {.max_attempts = 4, .initial_backoff = 40ms, .jitter = 0.25}},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         if (m.offset() != 5) co_return;
                         std::lock_guard lock(mutex);
                         attempts.push_back(std::chrono::steady_clock::now());
                         if (attempts.size() < 3) throw std::runtime_error("temporarily down");
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "flaky").handled == 10; }));
    stop_host(rt, host);
    const auto s = stats_of(host, "flaky");
    BOOST_TEST(s.retried == 2u);
    BOOST_TEST(s.failed == 0u);
    BOOST_TEST(s.dead_lettered == 0u);
    BOOST_TEST_REQUIRE(attempts.size() == 3u);
    // 40 ms then 80 ms, each at least 75 % of it (jitter 0.25); timers never fire early.
    BOOST_TEST((attempts[1] - attempts[0] >= 30ms));
    BOOST_TEST((attempts[2] - attempts[1] >= 60ms));
    BOOST_TEST(k.admin().committed(group, topic)[0] == 10);
}

BOOST_AUTO_TEST_CASE(a_permanent_error_skips_retries_and_its_dead_letter_carries_the_failure) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("poison", 1, 10);
    const auto dlq = k.new_topic("poison-dead", 1);
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    host.add_trigger({.name = "strict",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .retry = {.max_attempts = 5, .initial_backoff = 10ms},
                      .dead_letter = {.topic = dlq}},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         if (m.offset() == 3) throw kt::permanent_error("bad payload");
                         co_return;
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        const auto s = stats_of(host, "strict");
        return s.handled + s.dead_lettered == 10;
    }));
    stop_host(rt, host);
    const auto s = stats_of(host, "strict");
    BOOST_TEST(s.retried == 0u);
    BOOST_TEST(s.dead_lettered == 1u);
    BOOST_TEST(s.failed == 1u);
    BOOST_TEST(k.admin().committed(group, topic)[0] == 10);  // the dead letter completes it

    auto letters = read_back(dlq, 1);
    BOOST_TEST_REQUIRE(letters.size() == 1u);
    const auto& letter = letters[0];
    BOOST_TEST(letter.key.value_or("") == "key-3");
    BOOST_TEST(letter.value.value_or("") == "value-3");
    BOOST_TEST(letter.header("kt-original-topic") == topic);
    BOOST_TEST(letter.header("kt-original-partition") == "0");
    BOOST_TEST(letter.header("kt-original-offset") == "3");
    BOOST_TEST(letter.header("kt-trigger") == "strict");
    BOOST_TEST(letter.header("kt-error-type") == "kt::permanent_error");
    BOOST_TEST(letter.header("kt-error-message") == "bad payload");
    BOOST_TEST(letter.header("kt-attempts") == "1");
    BOOST_TEST(letter.header("kt-failed-at").size() == 24u);  // ...T..:..:..sssZ
}

BOOST_AUTO_TEST_CASE(a_batch_trigger_gets_one_partitions_messages_in_order_up_to_the_limit) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("batch", 2, 250);
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::map<std::pair<std::int32_t, std::int64_t>, int> seen;
    std::size_t largest = 0, bad_batches = 0, batches = 0;
    host.add_batch_trigger({.name = "batched", .topic = topic, .consumer = k.consumer(group)},
                           {.max_messages = 40, .max_wait = 50ms},
                           [&](std::span<const kt::message> batch) -> asio::awaitable<void> {
                               std::lock_guard lock(mutex);
                               ++batches;
                               largest = std::max(largest, batch.size());
                               for (std::size_t i = 0; i < batch.size(); ++i) {
                                   ++seen[{batch[i].partition(), batch[i].offset()}];
                                   if (i > 0 && (batch[i].partition() != batch[0].partition() ||
                                                 batch[i].offset() != batch[i - 1].offset() + 1))
                                       ++bad_batches;
                               }
                               co_return;
                           });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "batched").handled == 250; }));
    // A partial batch goes after max_wait.
    k.produce(topic, 3, 100, 250);
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "batched").handled == 253; }));
    stop_host(rt, host);
    BOOST_TEST(seen.size() == 253u);
    BOOST_TEST(std::all_of(seen.begin(), seen.end(), [](const auto& e) { return e.second == 1; }));
    BOOST_TEST(bad_batches == 0u);
    BOOST_TEST(largest <= 40u);
    BOOST_TEST(largest > 1u);
    BOOST_TEST(batches < 253u);
}

BOOST_AUTO_TEST_CASE(at_most_once_commits_each_offset_before_its_handler_runs) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("amo", 1, 20);
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::atomic<int> handled{0}, committed_first{0};
    host.add_trigger({.name = "once",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .delivery = kt::delivery_guarantee::at_most_once},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         // Blocking look-up: fine in a test, never in a real handler.
                         kt::admin admin({{"bootstrap.servers", k.bootstrap()}});
                         const auto committed = admin.committed(group, topic);
                         if (committed.count(0) && committed.at(0) > m.offset()) ++committed_first;
                         ++handled;
                         co_return;
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return handled == 20; }));
    stop_host(rt, host);
    BOOST_TEST(committed_first.load() == 20);
    BOOST_TEST(k.admin().committed(group, topic)[0] == 20);
}

BOOST_AUTO_TEST_CASE(handler_policies_are_validated_by_name) {
    auto& k = kafka::instance();
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    auto noop = [](const kt::message&) -> asio::awaitable<void> { co_return; };
    auto refused = [&](kt::trigger_options o, const std::string& property) {
        try {
            host.add_trigger(std::move(o), noop);
        } catch (const kt::config_error& e) {
            return e.property() == property;
        }
        return false;
    };
    BOOST_TEST(refused(
        {.name = "a", .topic = "t", .consumer = k.consumer("g"), .dead_letter = {.topic = "t"}},
        "dead_letter.topic"));
    BOOST_TEST(refused({.name = "b",
                        .topic = "t",
                        .consumer = k.consumer("g"),
                        .retry = {.initial_backoff = 100ms, .max_backoff = 10ms}},
                       "retry.max_backoff"));
    BOOST_TEST(refused({.name = "c",
                        .topic = "t",
                        .consumer = k.consumer("g"),
                        .delivery = kt::delivery_guarantee::exactly_once},
                       "delivery"));
    BOOST_TEST(host.consumer_count() == 0u);
    // Key-ordered exactly-once is exactly once across restarts only through completion maps.
    kt::trigger_host without_maps{rt, {.completion_map = false}};
    auto copy = [](const kt::message&, kt::producer&) -> asio::awaitable<void> { co_return; };
    try {
        without_maps.add_trigger({.name = "eos",
                                  .topic = "t",
                                  .consumer = k.consumer("g"),
                                  .ordering = kt::ordering::key,
                                  .delivery = kt::delivery_guarantee::exactly_once},
                                 copy);
        BOOST_FAIL("exactly_once, ordering::key, completion_map false: expected a config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == "completion_map");
    }
}

namespace {
struct order {
    std::string id;
    int quantity = 0;
};
order tag_invoke(boost::json::value_to_tag<order>, const boost::json::value& v) {
    const auto& o = v.as_object();
    return {boost::json::value_to<std::string>(o.at("id")),
            boost::json::value_to<int>(o.at("quantity"))};
}
}  // namespace

BOOST_AUTO_TEST_CASE(typed_handlers_get_decoded_values_and_undecodable_messages_dead_letter) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("typed", 1);
    const auto dlq = k.new_topic("typed-dead", 1);
    {
        kt::producer p({{"bootstrap.servers", k.bootstrap()}});
        p.produce(topic, "a", R"({"id":"a","quantity":2})");
        p.produce(topic, "b", R"({"id":"b","quantity":)");         // truncated: not JSON
        p.produce(topic, "c", R"({"id":"c","quantity":"many"})");  // JSON, wrong type
        p.produce(topic, "d", R"({"id":"d","quantity":5})");
        BOOST_TEST_REQUIRE(p.flush(30s));
    }
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::vector<std::pair<std::string, int>> orders;
    host.add_trigger(
        {.name = "orders",
         .topic = topic,
         .consumer = k.consumer(k.unique("typed")),
         .retry = {.max_attempts = 3, .initial_backoff = 10ms},
         .dead_letter = {.topic = dlq}},
        kt::typed<order>(kt::decode::json_as<order>,
                         [&](const order& o, const kt::message&) -> asio::awaitable<void> {
                             std::lock_guard lock(mutex);
                             orders.emplace_back(o.id, o.quantity);
                             co_return;
                         }));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        const auto s = stats_of(host, "orders");
        return s.handled + s.dead_lettered == 4;
    }));
    stop_host(rt, host);
    BOOST_TEST((orders == std::vector<std::pair<std::string, int>>{{"a", 2}, {"d", 5}}));
    BOOST_TEST(stats_of(host, "orders").retried == 0u);  // decode errors are never retried
    auto letters = read_back(dlq, 2);
    BOOST_TEST_REQUIRE(letters.size() == 2u);
    BOOST_TEST(letters[0].key.value_or("") == "b");
    BOOST_TEST(letters[0].header("kt-error-type") == "kt::decode_error");
    BOOST_TEST(letters[0].header("kt-error-message").find("not valid JSON") != std::string::npos);
    BOOST_TEST(letters[1].key.value_or("") == "c");
    BOOST_TEST(letters[1].header("kt-error-message").find("expected type") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_revoke_drops_queued_messages_and_cancels_handlers_after_its_deadline) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("revoke", 2, 40);
    std::mutex mutex;
    std::map<std::pair<std::int32_t, std::int64_t>, int> handled_by_b;
    std::set<std::int32_t> started_by_a_after_b;  // partitions A started work on after B began
    std::atomic<int> cancelled{0};
    std::atomic<bool> b_running{false};

    // Host A: partition order, every handler hangs until cancelled, so each partition has one
    // message in flight and the rest queued.
    kt::runtime rt_a{two_shards};
    kt::trigger_host a{rt_a, {.drain_timeout = 300ms, .revoke_drain_timeout = 300ms}};
    a.add_trigger({.name = "stuck", .topic = topic, .consumer = k.consumer(group)},
                  [&](const kt::message& m) -> asio::awaitable<void> {
                      if (b_running) {
                          std::lock_guard lock(mutex);
                          started_by_a_after_b.insert(m.partition());
                      }
                      try {
                          co_await sleep_ms(60'000);
                      } catch (const boost::system::system_error&) {
                          ++cancelled;
                          throw;
                      }
                  });
    a.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(a, "stuck").in_flight == 2; }));

    // Host B joins the group: the rebalance moves one partition from A to B (the embedded
    // cluster reports it as lost, Kafka as revoked: both cancel A's handler of it).
    kt::runtime rt_b{two_shards};
    kt::trigger_host b{rt_b};
    b.add_trigger({.name = "fresh", .topic = topic, .consumer = k.consumer(group)},
                  [&](const kt::message& m) -> asio::awaitable<void> {
                      b_running = true;
                      std::lock_guard lock(mutex);
                      ++handled_by_b[{m.partition(), m.offset()}];
                      co_return;
                  });
    b.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return cancelled.load() >= 1; }, 60s));
    const auto high = k.admin().high_watermarks(topic);
    std::int32_t moved = -1;
    BOOST_TEST_REQUIRE(wait_until([&] {
        std::lock_guard lock(mutex);
        if (handled_by_b.empty()) return false;
        moved = handled_by_b.begin()->first.first;
        return static_cast<std::int64_t>(handled_by_b.size()) == high.at(moved);
    }));
    {
        std::lock_guard lock(mutex);
        // B starts at offset 0: A never committed the message it was cancelled on.
        BOOST_TEST(handled_by_b.begin()->first.second == 0);
        // A's queued messages of the moved partition never ran after the move.
        BOOST_TEST(started_by_a_after_b.count(moved) == 0u);
    }
    stop_host(rt_b, b);
    stop_host(rt_a, a);
}

BOOST_AUTO_TEST_CASE(rebalance_listeners_hear_of_assignment_and_revocation_in_order) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("listen", 3, 30);
    std::mutex mutex;
    std::vector<std::string> events;  // "+p" assigned, "-p" revoked, "!p" lost, "h" first handled
    bool handled_once = false;
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt};
    auto record = [&](char what) {
        return [&, what](std::vector<std::int32_t> partitions) -> asio::awaitable<void> {
            std::sort(partitions.begin(), partitions.end());
            std::lock_guard lock(mutex);
            for (auto p : partitions) events.push_back(std::string(1, what) + std::to_string(p));
            co_return;
        };
    };
    host.add_trigger({.name = "listening",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .listeners = {.on_assigned = record('+'),
                                    .on_revoked = record('-'),
                                    .on_lost = record('!')}},
                     [&](const kt::message&) -> asio::awaitable<void> {
                         std::lock_guard lock(mutex);
                         if (!handled_once) events.push_back("h");
                         handled_once = true;
                         co_return;
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "listening").handled == 30; }));
    stop_host(rt, host);
    const std::vector<std::string> expected{"+0", "+1", "+2", "h", "-0", "-1", "-2"};
    BOOST_TEST(events == expected, boost::test_tools::per_element());
}
