// Partial batch results on a Kafka (embedded cluster, or $KT_BOOTSTRAP): a batch handler throws
// kt::batch_error naming the failed message; the messages before it complete, only it (and those
// after it) run again, and out of attempts only it is dead-lettered (read back with an
// independent client).
#define BOOST_TEST_MODULE batch_results
#include <boost/test/unit_test.hpp>

#include <map>
#include <mutex>
#include <span>
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
using kt_test::stats_of;
using kt_test::stop_host;
using kt_test::wait_until;

namespace {

/// What a batch handler saw: per offset, how often it was processed (succeeded) and how often it
/// was the failing message; and every call: its first offset, and whether it threw.
struct batch_journal {
    std::mutex mutex;
    std::map<std::int64_t, int> processed, failed;
    std::vector<std::pair<std::int64_t, bool>> calls;

    /// The first offsets of the calls right after one that threw.
    std::vector<std::int64_t> starts_after_failures() const {
        std::vector<std::int64_t> starts;
        for (std::size_t i = 0; i + 1 < calls.size(); ++i)
            if (calls[i].second) starts.push_back(calls[i + 1].first);
        return starts;
    }
};

/// A batch handler that processes its messages in order and throws kt::batch_error at offset
/// `bad` the first `failures` times it gets there.
kt::batch_handler failing_at(batch_journal& journal, std::int64_t bad, int failures) {
    return [&journal, bad, failures](std::span<const kt::message> batch) -> asio::awaitable<void> {
        std::lock_guard lock(journal.mutex);
        journal.calls.emplace_back(batch.front().offset(), false);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto offset = batch[i].offset();
            if (offset == bad && journal.failed[offset] < failures) {
                ++journal.failed[offset];
                journal.calls.back().second = true;
                throw kt::batch_error{i, fmt::format("offset {} failed", offset)};
            }
            ++journal.processed[offset];
        }
        co_return;
    };
}

void expect_committed_to_the_end(const std::string& group, const std::string& topic) {
    for (const auto& [partition, offsets] :
         kt_test::broker_offsets(kafka::instance().bootstrap(), group, topic))
        BOOST_TEST(offsets.committed == offsets.high_watermark, "partition " << partition);
}

std::int64_t records_in(const std::string& topic) {
    std::int64_t total = 0;
    for (const auto& [partition, offsets] : kt_test::broker_offsets(
             kafka::instance().bootstrap(), kafka::instance().unique("count"), topic))
        total += offsets.high_watermark;
    return total;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_message_that_fails_once_is_retried_alone_with_those_after_it) {
    auto& k = kafka::instance();
    constexpr int count = 40;
    constexpr std::int64_t bad = 13;
    const auto [topic, group] = k.topic_with_data("partial", 1, count);
    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt};
    batch_journal journal;
    host.add_batch_trigger({.name = "partial",
                            .topic = topic,
                            .consumer = k.consumer(group),
                            .retry = {.max_attempts = 3, .initial_backoff = 10ms}},
                           {.max_messages = 10, .max_wait = 50ms}, failing_at(journal, bad, 1));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "partial").handled == count; }));
    kt_test::commit_host(rt, host);
    stop_host(rt, host);

    const auto s = stats_of(host, "partial");
    BOOST_TEST(s.handled == static_cast<std::uint64_t>(count));
    BOOST_TEST(s.retried == 1u);
    BOOST_TEST(s.failed == 0u);
    for (std::int64_t offset = 0; offset < count; ++offset)
        BOOST_TEST(journal.processed[offset] == 1, "offset " << offset);
    BOOST_TEST(journal.failed[bad] == 1);
    // The retry is a batch starting at the failed message, not at its batch's first.
    BOOST_TEST(journal.starts_after_failures() == std::vector<std::int64_t>{bad});
    expect_committed_to_the_end(group, topic);
}

BOOST_AUTO_TEST_CASE(out_of_attempts_only_the_failed_message_is_dead_lettered_and_the_rest_go_on) {
    auto& k = kafka::instance();
    constexpr int count = 40;
    constexpr std::int64_t bad = 17;
    const auto [topic, group] = k.topic_with_data("partial-dead", 1, count);
    const auto dlq = k.new_topic("partial-dead-dlq", 1);
    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt};
    batch_journal journal;
    host.add_batch_trigger({.name = "partial-dead",
                            .topic = topic,
                            .consumer = k.consumer(group),
                            .retry = {.max_attempts = 3, .initial_backoff = 10ms},
                            .dead_letter = {.topic = dlq}},
                           {.max_messages = 10, .max_wait = 50ms}, failing_at(journal, bad, 1000));
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        const auto s = stats_of(host, "partial-dead");
        return s.handled + s.failed == count;
    }));
    kt_test::commit_host(rt, host);
    stop_host(rt, host);

    const auto s = stats_of(host, "partial-dead");
    BOOST_TEST(s.handled == static_cast<std::uint64_t>(count - 1));
    BOOST_TEST(s.dead_lettered == 1u);
    BOOST_TEST(s.failed == 1u);
    BOOST_TEST(s.retried == 2u);
    BOOST_TEST(journal.failed[bad] == 3);  // its attempts, counted for it alone
    for (std::int64_t offset = 0; offset < count; ++offset)
        if (offset != bad) BOOST_TEST(journal.processed[offset] == 1, "offset " << offset);
    BOOST_TEST(journal.processed.count(bad) == 0u);
    // Two retries starting at it, then the rest as a batch from the next message.
    BOOST_TEST(journal.starts_after_failures() == (std::vector<std::int64_t>{bad, bad, bad + 1}));
    expect_committed_to_the_end(group, topic);

    BOOST_TEST_REQUIRE(records_in(dlq) == 1);
    const auto letters = kt_test::read_records(k.bootstrap(), dlq, 1);
    BOOST_TEST(letters.at(0).value.value_or("") == "value-17");
    BOOST_TEST(letters.at(0).header("kt-original-offset").value_or("") == "17");
    BOOST_TEST(letters.at(0).header("kt-attempts").value_or("") == "3");
    BOOST_TEST(letters.at(0).header("kt-error-type").value_or("") == "kt::batch_error");
    BOOST_TEST(letters.at(0).header("kt-error-message").value_or("") == "offset 17 failed");
}

BOOST_AUTO_TEST_CASE(a_batch_error_with_a_permanent_cause_dead_letters_that_message_at_once) {
    auto& k = kafka::instance();
    constexpr int count = 20;
    const auto [topic, group] = k.topic_with_data("partial-permanent", 1, count);
    const auto dlq = k.new_topic("partial-permanent-dlq", 1);
    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt};
    batch_journal journal;
    host.add_batch_trigger(
        {.name = "permanent",
         .topic = topic,
         .consumer = k.consumer(group),
         .retry = {.max_attempts = 5, .initial_backoff = 10ms},
         .dead_letter = {.topic = dlq}},
        {.max_messages = 10, .max_wait = 50ms},
        [&](std::span<const kt::message> batch) -> asio::awaitable<void> {
            std::lock_guard lock(journal.mutex);
            for (std::size_t i = 0; i < batch.size(); ++i) {
                if (batch[i].offset() == 4)
                    throw kt::batch_error(
                        i, std::make_exception_ptr(kt::permanent_error("unparseable")));
                ++journal.processed[batch[i].offset()];
            }
            co_return;
        });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] {
        const auto s = stats_of(host, "permanent");
        return s.handled + s.failed == count;
    }));
    stop_host(rt, host);
    const auto s = stats_of(host, "permanent");
    BOOST_TEST(s.retried == 0u);
    BOOST_TEST(s.dead_lettered == 1u);
    BOOST_TEST(journal.processed.size() == static_cast<std::size_t>(count - 1));
    const auto letters = kt_test::read_records(k.bootstrap(), dlq, 1);
    BOOST_TEST(letters.at(0).header("kt-original-offset").value_or("") == "4");
    BOOST_TEST(letters.at(0).header("kt-error-type").value_or("") == "kt::permanent_error");
    BOOST_TEST(letters.at(0).header("kt-error-message").value_or("") == "unparseable");
}

BOOST_AUTO_TEST_CASE(an_index_outside_the_batch_fails_the_whole_batch_with_a_log_line) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("partial-outside", 1, 5);
    auto& logs = kt_test::log_capture::instance();
    const auto log_mark = logs.mark();
    kt::runtime rt{kt_test::two_shards};
    kt::trigger_host host{rt};
    std::mutex mutex;
    std::map<std::int64_t, int> calls;  // per offset, calls that included it
    bool thrown = false;
    host.add_batch_trigger({.name = "outside",
                            .topic = topic,
                            .consumer = k.consumer(group),
                            .retry = {.max_attempts = 2, .initial_backoff = 10ms},
                            .dead_letter = {.enabled = false}},
                           {.max_messages = 10, .max_wait = 200ms},
                           [&](std::span<const kt::message> batch) -> asio::awaitable<void> {
                               std::lock_guard lock(mutex);
                               for (const auto& m : batch) ++calls[m.offset()];
                               if (!thrown) {
                                   thrown = true;
                                   throw kt::batch_error{batch.size(), "past the end"};
                               }
                               co_return;
                           });
    host.start();
    BOOST_TEST_REQUIRE(wait_until([&] { return stats_of(host, "outside").handled == 5; }));
    stop_host(rt, host);
    BOOST_TEST(stats_of(host, "outside").retried == 1u);
    // The whole first batch ran again: each of its messages was in two calls.
    BOOST_TEST(calls.begin()->second == 2);
    BOOST_TEST(logs.since(log_mark, {"trigger 'outside': kt::batch_error index",
                                     "is outside its batch of", "the whole batch failed"})
                   .size() == 1u);
}
