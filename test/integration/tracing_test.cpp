// W3C trace context on a Kafka (embedded cluster, or $KT_BOOTSTRAP): kt::message::trace(), the
// child context of records a transform writes, of retry tier records and of dead letters (read
// back with an independent client), the tracing hooks' events and outcomes, and failure logs
// naming the trace.
#define BOOST_TEST_MODULE tracing
#include <boost/test/unit_test.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <kt/kt.hpp>

#include "broker_offsets.hpp"
#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"
#include "log_capture.hpp"
#include "read_records.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::kafka;
using kt_test::run_coro;
using kt_test::stop_host;
using kt_test::wait_until;

namespace {

// Each input record (by its value) carries its own trace; "plain" has none, "invalid" a
// traceparent with upper-case digits.
const std::map<std::string, std::string> traceparent_of{
    {"ok", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"flaky", "00-11111111111111111111111111111111-2222222222222222-00"},
    {"poison", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    {"invalid", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
};
const std::string trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// A hook event, copied out of the callback.
struct seen_event {
    std::string trigger;
    std::int64_t offset = -1;
    bool start = false;
    kt::handler_outcome outcome = kt::handler_outcome::ok;
    unsigned attempt = 0;
    std::optional<kt::trace_context> trace, child;
};

void produce_traced(kt::runtime& rt, const std::string& topic) {
    kt::producer producer({{"bootstrap.servers", kafka::instance().bootstrap()}});
    run_coro(rt.shard(0), [&]() -> asio::awaitable<void> {
        for (const std::string value : {"ok", "flaky", "poison", "invalid", "plain"}) {
            kt::record r{.topic = topic, .key = value, .value = value};
            if (auto it = traceparent_of.find(value); it != traceparent_of.end()) {
                r.headers.push_back({"traceparent", it->second});
                r.headers.push_back({"tracestate", trace_state});
            }
            co_await producer.send(std::move(r));
        }
    });
}

std::string trace_id_in(const std::optional<std::string>& traceparent) {
    return traceparent && traceparent->size() == 55 ? traceparent->substr(3, 32) : "<none>";
}
std::string span_id_in(const std::optional<std::string>& traceparent) {
    return traceparent && traceparent->size() == 55 ? traceparent->substr(36, 16) : "<none>";
}

}  // namespace

BOOST_AUTO_TEST_CASE(outputs_and_dead_letters_carry_a_child_context_and_hooks_see_each_outcome) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("traced", 1);
    const auto out = k.new_topic("traced-out", 1);
    const auto dlq = k.new_topic("traced-dlq", 1);
    const auto group = k.unique("traced");
    auto& logs = kt_test::log_capture::instance();
    const auto log_mark = logs.mark();

    std::mutex mutex;
    std::vector<seen_event> events;
    auto record_event = [&](const kt::handler_event& e, bool start, kt::handler_outcome outcome) {
        seen_event s{.trigger = std::string(e.trigger),
                     .offset = e.offset,
                     .start = start,
                     .outcome = outcome,
                     .attempt = e.attempt};
        if (e.trace) s.trace = *e.trace;
        if (e.child) s.child = *e.child;
        std::lock_guard lock(mutex);
        events.push_back(std::move(s));
    };
    kt::host_options options;
    options.tracing.on_handler_start = [&](const kt::handler_start& e) {
        record_event(e, true, kt::handler_outcome::ok);
    };
    options.tracing.on_handler_end = [&](const kt::handler_end& e) {
        record_event(e, false, e.outcome);
    };

    kt::runtime rt{kt_test::two_shards};
    produce_traced(rt, topic);
    kt::trigger_host host{rt, options};
    std::map<std::string, std::optional<kt::trace_context>> trace_in_handler;
    int flaky_calls = 0;
    host.add_trigger({.name = "traced",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .retry = {.max_attempts = 3, .initial_backoff = 10ms},
                      .dead_letter = {.topic = dlq}},
                     [&](const kt::message& m, kt::producer& output) -> asio::awaitable<void> {
                         const std::string value(m.value());
                         {
                             std::lock_guard lock(mutex);
                             trace_in_handler[value] = m.trace();
                             if (value == "flaky" && ++flaky_calls == 1)
                                 throw std::runtime_error("flaky once");
                         }
                         if (value == "poison") throw kt::permanent_error("cannot be handled");
                         kt::record r{.topic = out, .key = value, .value = value};
                         co_await output.send(std::move(r));
                         if (value == "ok") output.produce(out, "ok-fired", "ok-fired");
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return kt_test::handled_by(host, "traced") == 5; }));
    stop_host(rt, host);

    // message::trace() in the handler: valid headers parsed, the invalid and the missing not.
    BOOST_TEST_REQUIRE(trace_in_handler.size() == 5u);
    BOOST_TEST_REQUIRE(trace_in_handler["ok"].has_value());
    BOOST_TEST(trace_in_handler["ok"]->traceparent() == traceparent_of.at("ok"));
    BOOST_TEST(trace_in_handler["ok"]->trace_state == trace_state);
    BOOST_TEST(!trace_in_handler["invalid"].has_value());
    BOOST_TEST(!trace_in_handler["plain"].has_value());

    // Offsets in the topic: ok 0, flaky 1, poison 2, invalid 3, plain 4.
    std::map<std::int64_t, std::vector<seen_event>> by_offset;
    for (const auto& e : events) {
        BOOST_TEST(e.trigger == "traced");
        by_offset[e.offset].push_back(e);
    }
    auto outcomes_of = [&](std::int64_t offset) {
        std::vector<std::string> seen;
        for (const auto& e : by_offset[offset])
            seen.push_back(e.start ? fmt::format("start {}", e.attempt)
                                   : fmt::format("{} {}", kt::to_string(e.outcome), e.attempt));
        return fmt::format("{}", fmt::join(seen, ", "));
    };
    BOOST_TEST(outcomes_of(0) == "start 1, ok 1");
    BOOST_TEST(outcomes_of(1) == "start 1, retried 1, start 2, ok 2");
    BOOST_TEST(outcomes_of(2) == "start 1, dead_lettered 1");
    BOOST_TEST(outcomes_of(3) == "start 1, ok 1");
    BOOST_TEST(outcomes_of(4) == "start 1, ok 1");
    for (std::int64_t offset : {0, 1, 2}) {
        for (const auto& e : by_offset[offset]) {
            BOOST_TEST_REQUIRE(e.trace.has_value());
            BOOST_TEST_REQUIRE(e.child.has_value());
            BOOST_TEST(e.child->trace_id == e.trace->trace_id);
            BOOST_TEST(e.child->span_id != e.trace->span_id);
            // One child per handled message, whatever the attempt.
            BOOST_TEST(e.child->span_id == by_offset[offset].front().child->span_id);
        }
    }
    for (std::int64_t offset : {3, 4})
        for (const auto& e : by_offset[offset]) BOOST_TEST(!e.trace.has_value());

    // Read back by an independent client: outputs of ok (sent and fired), flaky, invalid, plain.
    std::map<std::string, kt_test::read_record> outputs;
    for (auto& r : kt_test::read_records(k.bootstrap(), out, 5)) outputs[r.value.value_or("")] = r;
    BOOST_TEST_REQUIRE(outputs.size() == 5u);
    BOOST_TEST(outputs["ok-fired"].header("traceparent").value_or("<none>") ==
               outputs["ok"].header("traceparent").value_or(""));
    BOOST_TEST(outputs["ok-fired"].header("tracestate").value_or("") == trace_state);
    for (const std::string value : {"ok", "flaky"}) {
        const auto traceparent = outputs[value].header("traceparent");
        BOOST_TEST(trace_id_in(traceparent) == trace_id_in(traceparent_of.at(value)));
        BOOST_TEST(span_id_in(traceparent) != span_id_in(traceparent_of.at(value)));
        BOOST_TEST(traceparent->substr(53) == traceparent_of.at(value).substr(53));  // flags kept
        BOOST_TEST(outputs[value].header("tracestate").value_or("") == trace_state);
    }
    BOOST_TEST(span_id_in(outputs["ok"].header("traceparent")) ==
               by_offset[0].front().child->span_id_hex());
    BOOST_TEST(span_id_in(outputs["flaky"].header("traceparent")) ==
               by_offset[1].front().child->span_id_hex());
    BOOST_TEST(!outputs["invalid"].header("traceparent").has_value());
    BOOST_TEST(!outputs["plain"].header("traceparent").has_value());

    // The dead letter: the poison record's trace, the handling's span, tracestate forwarded.
    const auto letters = kt_test::read_records(k.bootstrap(), dlq, 1);
    const auto& letter = letters.at(0);
    BOOST_TEST(letter.value.value_or("") == "poison");
    const auto letter_parent = letter.header("traceparent");
    BOOST_TEST(trace_id_in(letter_parent) == trace_id_in(traceparent_of.at("poison")));
    BOOST_TEST(span_id_in(letter_parent) == by_offset[2].front().child->span_id_hex());
    BOOST_TEST(letter.header("tracestate").value_or("") == trace_state);
    std::size_t traceparents = 0;
    for (const auto& [name, value] : letter.headers) traceparents += name == "traceparent";
    BOOST_TEST(traceparents == 1u);  // the original one replaced, not repeated

    // Failure logs name the trace.
    BOOST_TEST(logs.since(log_mark, {"'traced' failed", "flaky once",
                                     "[trace 11111111111111111111111111111111]"})
                   .size() == 1u);
    BOOST_TEST(logs.since(log_mark, {"'traced' failed", "cannot be handled",
                                     "[trace 4bf92f3577b34da6a3ce929d0e0e4736]"})
                   .size() == 1u);

    for (const auto& [partition, offsets] : kt_test::broker_offsets(k.bootstrap(), group, topic))
        BOOST_TEST(offsets.committed == offsets.high_watermark);
}

BOOST_AUTO_TEST_CASE(retry_tier_records_and_the_last_dead_letter_each_carry_a_child_context) {
    // poison fails in every attempt: tier 1, tier 2, then the dead letter topic. Each record
    // written is a child of the record whose attempt failed: one trace, a new span per hop.
    auto& k = kafka::instance();
    const auto topic = k.new_topic("traced-tiers", 1);
    const std::vector<std::string> tier_topics{topic + ".retry.1", topic + ".retry.2"};
    for (const auto& t : tier_topics) k.create_topic(t, 1);
    const auto dlq = k.new_topic("traced-tiers-dlq", 1);
    const auto group = k.unique("traced-tiers");
    std::mutex mutex;
    std::vector<std::string> seen_spans;  // the parent span each attempt's message carried
    kt::runtime rt{kt_test::two_shards};
    kt::producer producer({{"bootstrap.servers", k.bootstrap()}});
    run_coro(rt.shard(0), [&]() -> asio::awaitable<void> {
        kt::record r{.topic = topic, .key = "poison", .value = "poison"};
        r.headers.push_back({"traceparent", traceparent_of.at("poison")});
        co_await producer.send(std::move(r));
    });
    kt::trigger_host host{rt};
    host.add_trigger({.name = "traced-tiers",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .retry = {.max_attempts = 1},
                      .retry_topics = {.delays = {100ms, 100ms}},
                      .dead_letter = {.topic = dlq}},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         {
                             std::lock_guard lock(mutex);
                             const auto trace = m.trace();
                             seen_spans.push_back(trace ? trace->span_id_hex() : "<none>");
                         }
                         throw std::runtime_error("poison cannot be handled");
                         co_return;
                     });
    host.start();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return kt_test::stats_of(host, "traced-tiers").dead_lettered == 1u; }));
    stop_host(rt, host);

    // Read back with an independent client: the original, tier 1, tier 2, the dead letter.
    std::vector<std::string> traceparents{traceparent_of.at("poison")};
    for (const auto& t : tier_topics) {
        const auto records = kt_test::read_records(k.bootstrap(), t, 1);
        BOOST_TEST_REQUIRE(records.size() == 1u, t);
        traceparents.push_back(records[0].header("traceparent").value_or(""));
    }
    const auto letters = kt_test::read_records(k.bootstrap(), dlq, 1);
    BOOST_TEST_REQUIRE(letters.size() == 1u);
    traceparents.push_back(letters[0].header("traceparent").value_or(""));
    for (std::size_t hop = 1; hop < traceparents.size(); ++hop) {
        BOOST_TEST(trace_id_in(traceparents[hop]) == "4bf92f3577b34da6a3ce929d0e0e4736",
                   "hop " << hop << ": " << traceparents[hop]);
        BOOST_TEST(span_id_in(traceparents[hop]) != span_id_in(traceparents[hop - 1]),
                   "hop " << hop << " has a span of its own");
    }
    // Each attempt ran under the record it read: the original's span, then each tier record's.
    std::lock_guard lock(mutex);
    BOOST_TEST_REQUIRE(seen_spans.size() == 3u);
    for (std::size_t attempt = 0; attempt < seen_spans.size(); ++attempt)
        BOOST_TEST(seen_spans[attempt] == span_id_in(traceparents[attempt]), "attempt " << attempt);
}

BOOST_AUTO_TEST_CASE(a_hook_that_throws_is_logged_and_the_message_is_still_handled) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("hook-throws", 1, 20);
    auto& logs = kt_test::log_capture::instance();
    const auto log_mark = logs.mark();
    kt::host_options options;
    options.tracing.on_handler_start = [](const kt::handler_start&) {
        throw std::runtime_error("hook broke");
    };
    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt, options};
    kt_test::handled_log handled;
    host.add_trigger({.name = "hooked", .topic = topic, .consumer = k.consumer(group)},
                     kt_test::recording(handled, "hooked"));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return kt_test::handled_by(host, "hooked") == 20; }));
    stop_host(rt, host);
    BOOST_TEST(handled.distinct("hooked") == 20u);
    BOOST_TEST(logs.since(log_mark, {"tracing hook on_handler_start threw: hook broke"}).size() ==
               20u);
}

BOOST_AUTO_TEST_CASE(an_exactly_once_transform_gives_its_output_the_child_context_too) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("traced-eos", 1);
    const auto out = k.new_topic("traced-eos-out", 1);
    const auto group = k.unique("traced-eos");
    std::mutex mutex;
    std::map<std::int64_t, std::string> child_span_of;  // offset → the hooks' child span id
    std::vector<std::string> outcomes;
    kt::host_options options;
    options.tracing.on_handler_end = [&](const kt::handler_end& e) {
        std::lock_guard lock(mutex);
        outcomes.push_back(fmt::format("{} {}", e.offset, kt::to_string(e.outcome)));
        if (e.child) child_span_of[e.offset] = e.child->span_id_hex();
    };
    kt::runtime rt{kt_test::two_shards};
    produce_traced(rt, topic);
    kt::trigger_host host{rt, options};
    host.add_trigger({.name = "traced-eos",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .delivery = kt::delivery_guarantee::exactly_once},
                     [&](const kt::message& m, kt::producer& output) -> asio::awaitable<void> {
                         const std::string value(m.value());
                         if (value != "ok" && value != "plain") co_return;
                         kt::record r{.topic = out, .key = value, .value = value};
                         co_await output.send(std::move(r));
                     });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return kt_test::handled_by(host, "traced-eos") == 5; }));
    stop_host(rt, host);
    BOOST_TEST(fmt::format("{}", fmt::join(outcomes, ", ")) == "0 ok, 1 ok, 2 ok, 3 ok, 4 ok");

    std::map<std::string, kt_test::read_record> outputs;
    for (auto& r : kt_test::read_records(k.bootstrap(), out, 2)) outputs[r.value.value_or("")] = r;
    const auto traceparent = outputs["ok"].header("traceparent");
    BOOST_TEST(trace_id_in(traceparent) == trace_id_in(traceparent_of.at("ok")));
    BOOST_TEST(span_id_in(traceparent) == child_span_of[0]);
    BOOST_TEST(outputs["ok"].header("tracestate").value_or("") == trace_state);
    BOOST_TEST(!outputs["plain"].header("traceparent").has_value());
}
