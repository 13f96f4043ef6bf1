// Fault injection on the embedded cluster: broker outages, coordinator and leader moves, request
// errors and slow brokers, each while messages stream through a trigger. After each: every
// produced message handled at least once, nothing committed before it was handled, consumption
// resumes. Against a real broker ($KT_BOOTSTRAP) every case is skipped.
#define BOOST_TEST_MODULE fault_injection
#include <boost/test/unit_test.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <kt/kt.hpp>

#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"
#include "log_capture.hpp"
#include "read_records.hpp"
#include "trickle_producer.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kt_test::kafka;
using kt_test::log_capture;
using kt_test::stop_host;
using kt_test::trickle_producer;
using kt_test::two_shards;
using kt_test::wait_until;
using steady = std::chrono::steady_clock;

namespace {

constexpr int partition_count = 4;
constexpr int initial_messages = 300;  // before the fault
constexpr int final_messages = 100;    // after the fault: consumption must resume for them

/// Handled offsets per partition: the lowest offset not handled yet (everything below it was) and
/// the handled offsets above it. Thread-safe.
class handled_offsets {
  public:
    void add(std::int32_t partition, std::int64_t offset) {
        std::lock_guard lock(mutex_);
        ++handles_;
        auto& part = partitions_[partition];
        if (offset < part.next || !part.above.insert(offset).second) {
            ++duplicates_;
            return;
        }
        while (!part.above.empty() && *part.above.begin() == part.next) {
            part.above.erase(part.above.begin());
            ++part.next;
        }
    }
    /// Every offset below the returned one was handled.
    std::int64_t handled_below(std::int32_t partition) const {
        std::lock_guard lock(mutex_);
        auto it = partitions_.find(partition);
        return it == partitions_.end() ? 0 : it->second.next;
    }
    bool covers(const std::map<std::int32_t, std::int64_t>& high) const {
        for (auto [p, h] : high)
            if (handled_below(p) < h) return false;
        return true;
    }
    std::uint64_t handles() const {
        std::lock_guard lock(mutex_);
        return handles_;
    }
    std::uint64_t duplicates() const {
        std::lock_guard lock(mutex_);
        return duplicates_;
    }

  private:
    struct partition_state {
        std::int64_t next = 0;
        std::set<std::int64_t> above;
    };
    mutable std::mutex mutex_;
    std::map<std::int32_t, partition_state> partitions_;
    std::uint64_t handles_ = 0, duplicates_ = 0;
};

std::string describe(const std::map<std::int32_t, std::int64_t>& offsets) {
    std::ostringstream out;
    out << '{';
    for (auto [p, o] : offsets) out << ' ' << p << ':' << o;
    out << " }";
    return out.str();
}

/// Samples the group's committed offsets every ~100 ms on a thread of its own and records a
/// violation whenever a committed offset is above an offset not handled yet. The handled state is
/// read after the committed offsets, so a violation is never a race of the sampler.
class commit_watch {
  public:
    commit_watch(std::string group, std::string topic, const handled_offsets& handled)
        : group_(std::move(group)), topic_(std::move(topic)), handled_(handled) {
        thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
    }
    ~commit_watch() { stop(); }
    void stop() {
        if (thread_.joinable()) {
            thread_.request_stop();
            thread_.join();
        }
    }
    std::vector<std::string> violations() const {
        std::lock_guard lock(mutex_);
        return violations_;
    }
    std::int64_t last_sum() const { return last_sum_; }
    int samples() const { return samples_; }
    int failed_samples() const { return failed_samples_; }
    /// How many different committed states the samples saw: one sample proves nothing about a
    /// stream of commits, several advancing ones show the watch followed it.
    std::size_t distinct_commits_seen() const {
        std::lock_guard lock(mutex_);
        return sums_seen_.size();
    }
    std::string first_failure() const {
        std::lock_guard lock(mutex_);
        return first_failure_;
    }

  private:
    void run(std::stop_token stop) {
        kt::admin admin({{"bootstrap.servers", kafka::instance().bootstrap()}});
        while (!stop.stop_requested()) {
            const auto next = steady::now() + 100ms;
            try {
                const auto committed = admin.committed(group_, topic_, 2s);
                std::int64_t sum = 0;
                for (auto [p, c] : committed) {
                    sum += c;
                    const auto handled = handled_.handled_below(p);  // after reading committed
                    if (c > handled) {
                        std::lock_guard lock(mutex_);
                        violations_.push_back("partition " + std::to_string(p) + " committed at " +
                                              std::to_string(c) + " while only offsets below " +
                                              std::to_string(handled) + " were handled");
                    }
                }
                last_sum_ = sum;
                ++samples_;
                std::lock_guard lock(mutex_);
                if (sum > 0) sums_seen_.insert(sum);
            } catch (const std::exception& e) {
                ++failed_samples_;  // e.g. the coordinator is down: reported, not hidden
                std::lock_guard lock(mutex_);
                if (first_failure_.empty()) first_failure_ = e.what();
            }
            while (!stop.stop_requested() && steady::now() < next) std::this_thread::sleep_for(5ms);
        }
    }

    std::string group_, topic_;
    const handled_offsets& handled_;
    mutable std::mutex mutex_;
    std::vector<std::string> violations_;
    std::set<std::int64_t> sums_seen_;
    std::string first_failure_;
    std::atomic<std::int64_t> last_sum_{0};
    std::atomic<int> samples_{0}, failed_samples_{0};
    std::jthread thread_;
};

long long ms_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

/// What a fault scenario gets to work with.
struct scenario {
    kt::embedded_cluster& cluster;
    const kt::trigger_host& host;
    std::string topic, group;
    const handled_offsets& handled;
    std::size_t log_mark;

    /// Waits until the committed offsets (read by the test) grow past what they are now, i.e.
    /// an OffsetCommit sent after this call succeeded.
    bool commits_advance(std::chrono::milliseconds timeout = 30s) const {
        auto sum = [&]() -> std::int64_t {
            try {
                return kt_test::sum(kafka::instance().admin().committed(group, topic, 2s));
            } catch (const std::exception&) {
                return -1;
            }
        };
        std::int64_t before = -1;
        const auto deadline = steady::now() + timeout;
        while (before < 0 && steady::now() < deadline) before = sum();
        return before >= 0 && wait_until([&] { return sum() > before; }, timeout);
    }
    /// Waits until every partition handled a message it had not handled at this call.
    bool all_partitions_advance(std::chrono::milliseconds timeout = 30s) const {
        std::map<std::int32_t, std::int64_t> before;
        for (std::int32_t p = 0; p < partition_count; ++p) before[p] = handled.handled_below(p);
        return wait_until(
            [&] {
                for (auto [p, b] : before)
                    if (handled.handled_below(p) <= b) return false;
                return true;
            },
            timeout);
    }
    /// Log lines of this scenario's group containing `what`.
    std::size_t logged(const std::string& what) const {
        return log_capture::instance().since(log_mark, {"'" + group + "'", what}).size();
    }
};

/// Precondition of the suite: a real broker cannot inject faults, so there the case is reported
/// skipped (with this reason), never passed.
boost::test_tools::assertion_result needs_fault_injection(boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result available(kafka::instance().embedded() != nullptr);
    available.message() << "needs the embedded cluster's fault injection (KT_BOOTSTRAP is set)";
    return available;
}

/// Reads the topic back with an independent client: every value numbered below `expected` is there.
/// A value written twice is reported, not failed: the mock broker checks producer sequences only
/// for transactional producers (rd_kafka_mock_validate_records), so an idempotent producer's retry
/// of a batch whose acknowledgement a broker outage cut off is appended again. Kafka would drop it.
void check_every_value_written_once(const std::string& topic, int expected,
                                    const std::map<std::int32_t, std::int64_t>& high) {
    const auto records = kt_test::read_records(kafka::instance().bootstrap(), topic,
                                               static_cast<std::size_t>(kt_test::sum(high)));
    std::map<std::string, int> copies;
    for (const auto& r : records) ++copies[r.value.value_or("<null>")];
    int missing = 0, written_twice = 0;
    for (int i = 0; i < expected; ++i) {
        const auto it = copies.find("value-" + std::to_string(i));
        if (it == copies.end())
            ++missing;
        else
            written_twice += it->second > 1;
    }
    BOOST_TEST(missing == 0, missing << " of " << expected << " produced values not in " << topic);
    BOOST_TEST(copies.size() == static_cast<std::size_t>(expected),
               "only the produced values are in " << topic);
    if (written_twice > 0)
        BOOST_TEST_MESSAGE(written_twice << " value(s) appended twice by producer retries");
}

/// Streams messages through a trigger (2 shards, commits every 100 ms), runs `fault` once the
/// group is consuming and committing, produces more afterwards, then checks that every produced
/// message was handled at least once, that nothing was ever committed before it was handled and
/// that the final commit reaches the high watermarks.
void run_scenario(const std::string& name, const std::function<void(scenario&)>& fault,
                  std::chrono::milliseconds handler_time = 0ms,
                  kt::rebalance_listeners listeners = {}) {
    auto& k = kafka::instance();
    auto& capture = log_capture::instance();
    const auto started = steady::now();
    const auto [topic, group] = k.topic_with_data(name, partition_count, initial_messages);
    const auto log_mark = capture.mark();

    handled_offsets handled;
    commit_watch watch(group, topic, handled);
    {
        kt::runtime rt{two_shards};
        kt::trigger_host host{
            rt,
            {.commit_interval = 100ms, .statistics_interval = 500ms, .outage_recreate_after = 4s}};
        host.add_trigger({.name = name,
                          .topic = topic,
                          .consumer = k.consumer(group),
                          .listeners = std::move(listeners)},
                         [&](const kt::message& m) -> asio::awaitable<void> {
                             if (handler_time > 0ms) {  // I/O: faults catch handlers running
                                 asio::steady_timer timer(co_await asio::this_coro::executor,
                                                          handler_time);
                                 co_await timer.async_wait(asio::use_awaitable);
                             }
                             handled.add(m.partition(), m.offset());
                         });
        host.start();
        // Mid-stream: the first messages are handled and committed, more keep arriving.
        BOOST_TEST_REQUIRE(wait_until(
            [&] { return handled.handles() >= initial_messages && watch.last_sum() > 0; }, 30s));
        const auto consuming_ms = ms_since(started);
        trickle_producer trickle(topic, initial_messages);
        BOOST_TEST_REQUIRE(wait_until([&] { return handled.handles() >= initial_messages + 20; }),
                           "the trickle's messages are being handled when the fault starts");

        scenario s{*k.embedded(), host, topic, group, handled, log_mark};
        const auto fault_started = steady::now();
        fault(s);
        const auto fault_ms = ms_since(fault_started);

        const int produced_during_fault = trickle.next();
        BOOST_TEST_REQUIRE(wait_until([&] { return trickle.next() >= produced_during_fault + 20; }),
                           "the trickle goes on after the fault");
        BOOST_TEST(trickle.stop());
        k.produce(topic, final_messages, 100, trickle.next());
        const auto high = k.admin().high_watermarks(topic);
        const auto produced = kt_test::sum(high);
        check_every_value_written_once(topic, trickle.next() + final_messages, high);

        const auto produce_ms = ms_since(fault_started) - fault_ms;
        const auto resumed = steady::now();
        BOOST_TEST(wait_until([&] { return handled.covers(high); }, 60s),
                   "every produced offset handled; produced " << describe(high));
        const auto resume_ms = ms_since(resumed);
        // Commits catch up as well (after a session timeout only once the consumer rejoined:
        // a consumer that lost its membership cannot commit, not even while stopping).
        std::map<std::int32_t, std::int64_t> committed_before_stop;
        const bool caught_up = wait_until(
            [&] {
                try {
                    committed_before_stop = k.admin().committed(group, topic, 2s);
                } catch (const std::exception&) {
                }
                return committed_before_stop == high;
            },
            60s);
        BOOST_TEST(caught_up, "commits reach the high watermarks while running; committed "
                                  << describe(committed_before_stop) << " vs high watermarks "
                                  << describe(high));
        const auto catch_up_ms = ms_since(resumed) - resume_ms;
        const auto stopping = steady::now();
        stop_host(rt, host);
        const auto stop_ms = ms_since(stopping);
        watch.stop();
        // The cluster serves every case of the binary: an error no request took must not
        // carry over into the next case.
        for (auto api :
             {kt::kafka_api::offset_commit, kt::kafka_api::heartbeat, kt::kafka_api::fetch})
            k.embedded()->clear_request_errors(api);

        for (auto [p, h] : high)
            BOOST_TEST(handled.handled_below(p) >= h,
                       "partition " << p << ": offsets from " << handled.handled_below(p)
                                    << " below " << h << " never handled");
        const auto violations = watch.violations();
        BOOST_TEST(violations.size() == 0u);
        for (std::size_t i = 0; i < violations.size() && i < 10; ++i)
            BOOST_TEST_MESSAGE(name << ": committed before handled: " << violations[i]);
        BOOST_TEST(watch.distinct_commits_seen() >= 3u,
                   "the commit watch followed the stream: "
                       << watch.distinct_commits_seen() << " committed states in "
                       << watch.samples() << " samples, " << watch.failed_samples()
                       << " failed (first: " << watch.first_failure() << ")");
        const auto committed = k.admin().committed(group, topic);
        BOOST_TEST(committed == high, "final committed " << describe(committed)
                                                         << " vs high watermarks "
                                                         << describe(high));
        // A worker coroutine that dies with an exception (e.g. parking while cancelled) says so.
        BOOST_TEST(capture.since(log_mark, {"'" + name + "'", "ended without its report"}).empty());

        BOOST_TEST_MESSAGE(
            name << ": " << produced << " messages, " << handled.duplicates() << " duplicates; "
                 << watch.samples() << " commit samples (" << watch.failed_samples()
                 << " failed); logged " << s.logged("assigned") << " assigned, "
                 << s.logged("revoked") << " revoked, " << s.logged("lost") << " lost, "
                 << s.logged("commit failed") << " commit failures; consuming after "
                 << consuming_ms << " ms, fault " << fault_ms << " ms, produce " << produce_ms
                 << " ms, all handled " << resume_ms << " ms after the last produce, commits "
                 << catch_up_ms << " ms later, stop " << stop_ms << " ms, " << ms_since(started)
                 << " ms in all");
    }
}

// rd_kafka_resp_err_t values.
constexpr int not_leader_for_partition = 6;
constexpr int topic_authorization_failed = 29;  // permanent: librdkafka does not retry it
constexpr int request_timed_out = 7;
constexpr int coordinator_not_available = 15;
constexpr int coordinator_load_in_progress = 14;
constexpr int not_coordinator = 16;
constexpr int rebalance_in_progress = 27;
constexpr int unknown_member_id = 25;
constexpr int fenced_member_epoch = 110;
constexpr int unreleased_instance_id = 111;
constexpr int fenced_instance_id = 82;
constexpr int disconnect = -195;

}  // namespace

BOOST_AUTO_TEST_SUITE(faults, *boost::unit_test::precondition(needs_fault_injection))

BOOST_AUTO_TEST_CASE(a_broker_going_down_and_coming_back_loses_and_prematurely_commits_nothing) {
    run_scenario("broker-down", [](scenario& s) {
        // Partition leaders are spread over the three brokers, so each outage stalls some
        // partitions (and perhaps the group coordinator) while the others go on.
        for (int broker : {1, 2}) {
            s.cluster.set_broker_down(broker, true);
            std::this_thread::sleep_for(2s);
            s.cluster.set_broker_down(broker, false);
            BOOST_TEST(s.all_partitions_advance(),
                       "every partition is consumed again after broker " << broker << " is back");
        }
    });
}

BOOST_AUTO_TEST_CASE(the_group_coordinator_moving_to_another_broker_loses_nothing) {
    run_scenario("coordinator-move", [](scenario& s) {
        for (int broker : {2, 3}) {
            s.cluster.set_group_coordinator(s.group, broker);
            BOOST_TEST(s.commits_advance(), "commits resume at coordinator " << broker);
        }
    });
}

BOOST_AUTO_TEST_CASE(refused_offset_commits_are_retried_and_commit_nothing_unhandled) {
    run_scenario("commit-errors", [](scenario& s) {
        for (int error : {not_coordinator, request_timed_out, coordinator_not_available,
                          rebalance_in_progress}) {
            s.cluster.push_request_errors(kt::kafka_api::offset_commit, {error, error, error});
            // Errors are handed out in order, so a commit that succeeds came after all of them.
            BOOST_TEST(s.commits_advance(), "commits resume after error " << error);
        }
    });
}

// committed() (and the metrics and kt-host summary built on it) holds only what the broker
// acknowledged: commits refused around an explicit commit() and around stop()'s final commit
// leave it equal to the broker's view, read by an independent client.
BOOST_AUTO_TEST_CASE(refused_commits_never_show_as_committed) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("refused", 2, 40);
    handled_offsets handled;
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 1h}};  // commits only when asked, and on stop
    host.add_trigger({.name = "refused", .topic = topic, .consumer = k.consumer(group)},
                     [&](const kt::message& m) -> asio::awaitable<void> {
                         handled.add(m.partition(), m.offset());
                         co_return;
                     });
    auto ours = [&] {
        auto all = host.committed();
        return all.count(topic) ? all.at(topic) : std::map<std::int32_t, std::int64_t>{};
    };
    auto broker = [&] { return k.admin().committed(group, topic); };
    auto commit = [&] {
        std::string error;
        kt_test::run_coro(rt.shard(0), [&]() -> asio::awaitable<void> {
            try {
                co_await host.commit();
            } catch (const std::exception& e) {
                error = e.what();
            }
        });
        return error;
    };
    host.start();
    const auto first = k.admin().high_watermarks(topic);
    BOOST_TEST_REQUIRE(wait_until([&] { return handled.covers(first); }));

    k.embedded()->push_request_errors(kt::kafka_api::offset_commit, {topic_authorization_failed});
    const auto refused = commit();
    BOOST_TEST(!refused.empty(), "commit() reports the refusal");
    BOOST_TEST(broker().empty(), "the broker holds no commit: " << describe(broker()));
    BOOST_TEST(ours() == broker(), "ours " << describe(ours()));

    BOOST_TEST(commit() == "");
    BOOST_TEST(broker() == first, "committed " << describe(broker()));
    BOOST_TEST(ours() == broker(), "ours " << describe(ours()));

    k.produce(topic, 20, 100, 40);
    const auto second = k.admin().high_watermarks(topic);
    BOOST_TEST_REQUIRE(wait_until([&] { return handled.covers(second); }));
    // Enough refusals for every commit stop() makes (the final one, and any on revocation).
    k.embedded()->push_request_errors(kt::kafka_api::offset_commit,
                                      std::vector<int>(10, topic_authorization_failed));
    stop_host(rt, host);
    BOOST_TEST(broker() == first, "the final commit was refused: " << describe(broker()));
    BOOST_TEST(ours() == broker(), "ours " << describe(ours()));
    k.embedded()->clear_request_errors(kt::kafka_api::offset_commit);
}

// A member leaving while the group rebalances for a new one: the leaver's stop completes (its
// final commit is refused until the rebalance ends, then retried), the newcomer ends up with
// every partition and nothing is lost.
BOOST_AUTO_TEST_CASE(a_stop_during_a_rebalance_completes_and_loses_nothing) {
    auto& k = kafka::instance();
    auto& cluster = *k.embedded();
    const auto [topic, group] = k.topic_with_data("stop-rebalancing", 4, 200);
    handled_offsets handled;
    auto handler = [&](const kt::message& m) -> asio::awaitable<void> {
        handled.add(m.partition(), m.offset());
        co_return;
    };
    kt::runtime rt{two_shards};
    kt::trigger_host leaving{rt, {.commit_interval = 100ms}};
    leaving.add_trigger({.name = "leaving", .topic = topic, .consumer = k.consumer(group)},
                        handler);
    leaving.start();
    const auto first = k.admin().high_watermarks(topic);
    BOOST_TEST_REQUIRE(wait_until([&] { return handled.covers(first); }));

    kt::trigger_host joining{rt, {.commit_interval = 100ms}};
    joining.add_trigger({.name = "joining", .topic = topic, .consumer = k.consumer(group)},
                        handler);
    cluster.start_request_tracking();
    joining.start();
    // The newcomer's JoinGroup starts the rebalance; the embedded coordinator then waits for the
    // leaving member to rejoin: the stop lands while the rebalance is under way. Under KIP-848
    // the newcomer joins with a ConsumerGroupHeartbeat and the coordinator moves partitions to it
    // through the leaving member's next heartbeats: the stop lands while they move.
    const auto join_api = kafka::consumer_protocol() ? kt::kafka_api::consumer_group_heartbeat
                                                     : kt::kafka_api::join_group;
    BOOST_TEST_REQUIRE(wait_until([&] { return cluster.requests_received(join_api) > 0; }));
    cluster.stop_request_tracking();
    stop_host(rt, leaving);  // bounded by run_coro's 60 s: a hang fails here
    BOOST_TEST(leaving.consumer_count() == 0u);

    k.produce(topic, 100, 100, 200);
    const auto high = k.admin().high_watermarks(topic);
    BOOST_TEST(wait_until([&] { return handled.covers(high); }, 60s),
               "every message handled, the later ones by the member that stayed");
    BOOST_TEST(
        wait_until([&] { return k.admin().committed(group, topic, 2s) == high; }, 60s),
        "commits reach the high watermarks: " << describe(k.admin().committed(group, topic)));
    stop_host(rt, joining);
}

// A dead letter that cannot be written yet keeps its offset uncommitted: the commit stops below
// the failed message until the write succeeds, then moves on.
BOOST_AUTO_TEST_CASE(a_failing_dead_letter_write_holds_its_offset_until_it_succeeds) {
    auto& k = kafka::instance();
    auto& cluster = *k.embedded();
    const auto [topic, group] = k.topic_with_data("dead-letter-down", 1, 10);
    const auto dlq = k.new_topic("dead-letter-down-dlq", 1);
    constexpr int not_enough_replicas = 19;  // retriable: the producer keeps trying
    cluster.push_request_errors(kt::kafka_api::produce,
                                std::vector<int>(1000, not_enough_replicas));
    kt::runtime rt{two_shards};
    kt::trigger_host host{rt, {.commit_interval = 100ms}};
    host.add_trigger({.name = "poisoned",
                      .topic = topic,
                      .consumer = k.consumer(group),
                      .dead_letter = {.topic = dlq}},
                     [](const kt::message& m) -> asio::awaitable<void> {
                         if (m.offset() == 3) throw kt::permanent_error("bad payload");
                         co_return;
                     });
    host.start();
    auto committed = [&]() -> std::int64_t {
        try {
            const auto c = k.admin().committed(group, topic, 2s);
            return c.count(0) ? c.at(0) : -1;
        } catch (const std::exception&) {
            return -1;
        }
    };
    BOOST_TEST_REQUIRE(wait_until([&] { return committed() == 3; }),
                       "offsets below the failed message are committed (" << committed() << ")");
    // The dead letter producer keeps being refused: several more attempts reach the cluster,
    // and the commit is still held at the failed message.
    cluster.start_request_tracking();
    BOOST_TEST_REQUIRE(
        wait_until([&] { return cluster.requests_received(kt::kafka_api::produce) >= 3; }));
    cluster.stop_request_tracking();
    BOOST_TEST(committed() == 3);
    cluster.clear_request_errors(kt::kafka_api::produce);
    BOOST_TEST(wait_until([&] { return committed() == 10; }),
               "the written dead letter completes the offset (" << committed() << ")");
    stop_host(rt, host);
    BOOST_TEST(kt_test::sum(k.admin().high_watermarks(dlq)) == 1);
}

BOOST_AUTO_TEST_CASE(heartbeat_errors_make_the_consumer_rejoin_without_losing_messages) {
    if (kafka::consumer_protocol()) {
        run_scenario("heartbeat-errors", [](scenario& s) {
            // KIP-848 heartbeats (every second here) that fail retriably are sent again, to the
            // same or a newly found coordinator; the member keeps its partitions meanwhile.
            s.cluster.start_request_tracking();
            s.cluster.push_request_errors(kt::kafka_api::consumer_group_heartbeat,
                                          {coordinator_load_in_progress, not_coordinator});
            BOOST_TEST(wait_until(
                           [&] {
                               return s.cluster.requests_received(
                                          kt::kafka_api::consumer_group_heartbeat) >= 3;
                           },
                           20s),
                       "heartbeats went on after both injected errors");
            s.cluster.stop_request_tracking();
            BOOST_TEST(s.all_partitions_advance(), "every partition is still consumed");
            BOOST_TEST(s.logged("lost") == 0u, "no partition was lost to a retriable error");
        });
        return;
    }
    run_scenario("heartbeat-errors", [](scenario& s) {
        // Heartbeats go every 3 s (librdkafka's default heartbeat.interval.ms); a rejoin takes
        // session.timeout.ms - 1 s = 5 s on the embedded cluster.
        s.cluster.push_request_errors(kt::kafka_api::heartbeat, {rebalance_in_progress});
        BOOST_TEST(wait_until([&] { return s.logged("assigned") >= 2; }, 20s),
                   "the consumer rejoined the group");
        s.cluster.push_request_errors(kt::kafka_api::heartbeat, {not_coordinator});
        // Tracking starts after the push, so any heartbeat it counts came after the error was
        // queued: the first such one got it.
        s.cluster.start_request_tracking();
        BOOST_TEST(
            wait_until([&] { return s.cluster.requests_received(kt::kafka_api::heartbeat) > 0; },
                       20s),
            "a heartbeat received the injected NOT_COORDINATOR");
        s.cluster.stop_request_tracking();
        BOOST_TEST(s.all_partitions_advance(), "every partition is still consumed");
    });
}

BOOST_AUTO_TEST_CASE(fetch_errors_and_a_leader_change_only_delay_consumption) {
    run_scenario("fetch-errors", [](scenario& s) {
        s.cluster.push_request_errors(
            kt::kafka_api::fetch, {not_leader_for_partition, not_leader_for_partition, disconnect,
                                   disconnect, not_leader_for_partition});
        std::this_thread::sleep_for(1s);
        // Leaders start at a random broker: of two moves at least one changes the leader.
        s.cluster.set_partition_leader(s.topic, 0, 2);
        s.cluster.set_partition_leader(s.topic, 1, 3);
        std::this_thread::sleep_for(1s);
        s.cluster.set_partition_leader(s.topic, 0, 3);
        s.cluster.set_partition_leader(s.topic, 1, 1);
        BOOST_TEST(s.all_partitions_advance(),
                   "every partition is consumed again after the leader changes");
    });
}

BOOST_AUTO_TEST_CASE(slow_brokers_slow_consumption_down_without_stopping_it) {
    run_scenario("slow-brokers", [](scenario& s) {
        // The brokers stay slow until every partition advanced: progress made at 200 ms RTT,
        // however long the machine takes to show it.
        for (int broker : {1, 2, 3}) s.cluster.set_broker_rtt(broker, 200ms);
        BOOST_TEST(s.all_partitions_advance(), "every partition is consumed at 200 ms RTT");
        BOOST_TEST(s.commits_advance(), "commits go on at 200 ms RTT");
        for (int broker : {1, 2, 3}) s.cluster.set_broker_rtt(broker, 0ms);
    });
}

BOOST_AUTO_TEST_CASE(a_fatal_consumer_error_recreates_the_consumer_without_losing_messages) {
    run_scenario("fatal-error", [](scenario& s) {
        // librdkafka treats a fenced static member as fatal: the client is unusable from then on
        // (KIP-848: an instance id another member still holds).
        if (kafka::consumer_protocol())
            s.cluster.push_request_errors(kt::kafka_api::consumer_group_heartbeat,
                                          {unreleased_instance_id});
        else
            s.cluster.push_request_errors(kt::kafka_api::heartbeat, {fenced_instance_id});
        auto recreations = [&] {
            const auto consumers = s.host.consumer_stats();
            return consumers.empty() ? 0 : consumers.front().recreations;
        };
        BOOST_TEST(wait_until([&] { return recreations() == 1; }, 20s),
                   "the consumer was recreated once (" << recreations() << ")");
        BOOST_TEST(s.all_partitions_advance(), "every partition is consumed by the new client");
        BOOST_TEST(s.host.consumer_stats().size() == 1u);
    });
}

// Also a regression of a stall, the chain: a loss cancels the running 50 ms handlers; their
// failure went to handler_call::after_failure(), a coroutine of its own, whose co_await threw
// operation_aborted at once because cancellation had been requested, so the work ended without
// its report, its lane stayed busy and the partitions that came back were never consumed again.
BOOST_AUTO_TEST_CASE(partitions_lost_and_given_back_resume_where_their_work_was_complete) {
    std::atomic<int> lost_told{0};
    run_scenario(
        "lost-and-back",
        [&](scenario& s) {
            // An unknown member id (classic) or a fenced member epoch (KIP-848) makes librdkafka
            // declare the assignment lost and rejoin; the group has one member, so every
            // partition comes straight back.
            if (kafka::consumer_protocol())
                s.cluster.push_request_errors(kt::kafka_api::consumer_group_heartbeat,
                                              {fenced_member_epoch});
            else
                s.cluster.push_request_errors(kt::kafka_api::heartbeat, {unknown_member_id});
            BOOST_TEST(wait_until([&] { return s.logged("came back after a loss") > 0; }, 20s),
                       "the partitions were lost and came back");
            BOOST_TEST(s.all_partitions_advance(), "every partition is consumed again");
            BOOST_TEST(lost_told.load() >= partition_count,
                       "on_lost heard of the lost partitions (" << lost_told.load() << ")");
        },
        50ms, {.on_lost = [&](std::vector<std::int32_t> partitions) -> asio::awaitable<void> {
            lost_told += static_cast<int>(partitions.size());
            co_return;
        }});
}

BOOST_AUTO_TEST_CASE(a_short_outage_of_every_broker_is_ridden_out_by_the_same_client) {
    run_scenario("short-outage", [](scenario& s) {
        // Shorter than outage_recreate_after (4 s): librdkafka reconnects by itself.
        for (int broker : {1, 2, 3}) s.cluster.set_broker_down(broker, true);
        std::this_thread::sleep_for(1500ms);  // the outage itself, not a wait for a condition
        for (int broker : {1, 2, 3}) s.cluster.set_broker_down(broker, false);
        BOOST_TEST(s.all_partitions_advance(), "every partition is consumed after the outage");
        BOOST_TEST(s.commits_advance(), "commits resume after the outage");
        const auto consumers = s.host.consumer_stats();
        BOOST_TEST_REQUIRE(consumers.size() == 1u);
        BOOST_TEST(consumers.front().recreations == 0u, "no new client was needed");
    });
}

// Under group.protocol=consumer (group_faults_kip848) also a regression of two stalls, the
// chains: (1) librdkafka gave the partitions up as lost when its heartbeats went unanswered,
// shared_consumer::on_rebalance took that rebalance for an answer of the coordinator and ended
// the outage, so outage_watch never came due and the client was not recreated; (2) once due,
// kafka_client::end's rd_kafka_destroy_flags waited on the poll thread for the commits deferred
// until the coordinator came back, up to librdkafka's session.timeout.ms (45 s), every trigger of
// the consumer standing still meanwhile.
BOOST_AUTO_TEST_CASE(a_long_outage_of_every_broker_recreates_the_consumer_and_loses_nothing) {
    run_scenario("outage", [](scenario& s) {
        auto recreations = [&] {
            const auto consumers = s.host.consumer_stats();
            return consumers.empty() ? 0 : consumers.front().recreations;
        };
        for (int broker : {1, 2, 3}) s.cluster.set_broker_down(broker, true);
        kt::health_report health;
        BOOST_TEST(wait_until(
                       [&] {
                           health = s.host.health();
                           return !health.healthy;
                       },
                       10s),
                   "health reports the outage");
        BOOST_TEST((!health.reasons.empty() &&
                    health.reasons.front().find("no broker reachable") != std::string::npos),
                   "reason: " << (health.reasons.empty() ? "" : health.reasons.front()));
        // outage_recreate_after is 4 s: the client is replaced while the brokers are still down.
        BOOST_TEST(wait_until([&] { return recreations() >= 1; }, 20s),
                   "the consumer was recreated during the outage (" << recreations() << ")");
        for (int broker : {1, 2, 3}) s.cluster.set_broker_down(broker, false);
        BOOST_TEST(s.all_partitions_advance(), "every partition is consumed after the outage");
        BOOST_TEST(wait_until([&] { return s.host.health().healthy; }, 20s),
                   "healthy again once a broker is reachable");
    });
}

BOOST_AUTO_TEST_SUITE_END()
