// Unit tests of the poll thread's small parts: the command inbox, the lifecycle, the in-flight
// count and the wake-up.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "consumer/command_inbox.hpp"
#include "consumer/in_flight.hpp"
#include "consumer/lifecycle.hpp"
#include "consumer/message_records.hpp"
#include "consumer/wakeup.hpp"
#include "log_capture.hpp"
#include "message_data.hpp"

using kt::detail::command_inbox;
using kt::detail::consumer_lifecycle;
using kt::detail::consumer_phase;

BOOST_AUTO_TEST_SUITE(command_inbox_suite)

BOOST_AUTO_TEST_CASE(commands_are_taken_in_the_order_they_were_posted) {
    command_inbox<int> inbox;
    BOOST_TEST(!inbox.waiting());
    for (int i = 0; i < 3; ++i) BOOST_TEST(!inbox.post(i).has_value());
    BOOST_TEST(inbox.waiting());
    BOOST_TEST((inbox.take() == std::vector<int>{0, 1, 2}));
    BOOST_TEST(!inbox.waiting());
    BOOST_TEST(inbox.take().empty());
}

BOOST_AUTO_TEST_CASE(a_command_posted_after_close_is_handed_back_to_its_caller) {
    command_inbox<std::string> inbox;
    inbox.close();
    auto refused = inbox.post("stop");
    BOOST_TEST(refused.has_value());
    BOOST_TEST(*refused == "stop");  // so the caller completes its waiter at once
    BOOST_TEST(!inbox.waiting());
    BOOST_TEST(inbox.take().empty());
}

BOOST_AUTO_TEST_CASE(close_hands_back_what_was_still_queued) {
    command_inbox<int> inbox;
    (void)inbox.post(1);
    (void)inbox.post(2);
    BOOST_TEST((inbox.close() == std::vector<int>{1, 2}));
    BOOST_TEST(inbox.close().empty());
}

BOOST_AUTO_TEST_CASE(posts_from_many_threads_all_arrive_each_thread_in_its_order) {
    command_inbox<std::pair<int, int>> inbox;  // (thread, sequence)
    std::vector<std::thread> posters;
    for (int t = 0; t < 4; ++t)
        posters.emplace_back([&inbox, t] {
            for (int i = 0; i < 1000; ++i) (void)inbox.post({t, i});
        });
    std::vector<int> next(4, 0);
    int taken = 0;
    bool in_order = true;
    while (taken < 4000) {
        for (auto [t, i] : inbox.take()) {
            in_order = in_order && i == next[t]++;
            ++taken;
        }
    }
    for (auto& p : posters) p.join();
    BOOST_TEST(in_order);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lifecycle_suite)

BOOST_AUTO_TEST_CASE(the_phase_only_moves_forward_and_each_move_is_logged) {
    auto& logs = kt_test::log_capture::instance();
    const auto mark = logs.mark();
    consumer_lifecycle life("g-life");
    BOOST_TEST((life.phase() == consumer_phase::created));
    BOOST_TEST(life.advance(consumer_phase::running));
    BOOST_TEST(life.advance(consumer_phase::draining, "stop"));
    BOOST_TEST(!life.advance(consumer_phase::running));   // never back
    BOOST_TEST(!life.advance(consumer_phase::draining));  // nor twice
    BOOST_TEST(life.reached(consumer_phase::running));
    BOOST_TEST(!life.reached(consumer_phase::closing));
    BOOST_TEST(life.advance(consumer_phase::closed));  // phases may be skipped (no cancelling)
    BOOST_TEST(logs.since(mark, {"g-life", "created -> running"}).size() == 1u);
    BOOST_TEST(logs.since(mark, {"g-life", "running -> draining (stop)"}).size() == 1u);
    BOOST_TEST(logs.since(mark, {"g-life", "draining -> closed"}).size() == 1u);
    BOOST_TEST(logs.since(mark, {"g-life"}).size() == 3u);
}

BOOST_AUTO_TEST_CASE(of_two_threads_racing_to_the_same_phase_exactly_one_moves_it) {
    for (int round = 0; round < 50; ++round) {
        consumer_lifecycle life("g-race");
        std::atomic<int> moved{0};
        std::thread a([&] { moved += life.advance(consumer_phase::running); });
        std::thread b([&] { moved += life.advance(consumer_phase::running); });
        a.join();
        b.join();
        BOOST_TEST(moved.load() == 1);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(in_flight_suite)

using kt::detail::in_flight;

BOOST_AUTO_TEST_CASE(waiting_for_none_in_flight_keeps_turning_until_the_last_leaves) {
    in_flight live;
    live.enter(3);
    int turns = 0;
    const bool idle = live.wait_idle(in_flight::clock::now() + std::chrono::seconds(10), [&] {
        ++turns;
        live.leave();  // each turn lets one finish
    });
    BOOST_TEST(idle);
    BOOST_TEST(turns == 3);
}

BOOST_AUTO_TEST_CASE(waiting_gives_up_at_the_deadline_and_says_so) {
    in_flight live;
    live.enter();
    const auto deadline = in_flight::clock::now() + std::chrono::milliseconds(20);
    const bool idle =
        live.wait_idle(deadline, [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
    BOOST_TEST(!idle);
    BOOST_TEST((in_flight::clock::now() >= deadline));
    BOOST_TEST(live.count() == 1);
}

BOOST_AUTO_TEST_CASE(leaving_on_other_threads_is_seen_by_the_waiter) {
    in_flight live;
    live.enter(4);
    std::vector<std::thread> workers;
    for (int i = 0; i < 4; ++i) workers.emplace_back([&] { live.leave(); });
    BOOST_TEST(live.wait_idle(in_flight::clock::now() + std::chrono::seconds(10),
                              [] { std::this_thread::yield(); }));
    for (auto& w : workers) w.join();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(wakeup_suite)

using kt::detail::wakeup;

BOOST_AUTO_TEST_CASE(a_wake_before_the_wait_ends_it_at_once_and_only_once) {
    wakeup w;
    w.wake();
    const auto start = std::chrono::steady_clock::now();
    w.wait(std::chrono::seconds(10));
    BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(5)));
    const auto again = std::chrono::steady_clock::now();
    w.wait(std::chrono::milliseconds(20));  // consumed: this one sleeps its timeout
    BOOST_TEST((std::chrono::steady_clock::now() - again >= std::chrono::milliseconds(20)));
}

BOOST_AUTO_TEST_CASE(a_wake_from_another_thread_ends_a_long_wait) {
    wakeup w;
    std::thread waker([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        w.wake();
    });
    const auto start = std::chrono::steady_clock::now();
    w.wait(std::chrono::seconds(30));
    BOOST_TEST((std::chrono::steady_clock::now() - start < std::chrono::seconds(20)));
    waker.join();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(message_records_suite)

using kt::detail::message_data;
using kt::detail::message_records;
constexpr auto slab = message_records::slab_records;

// The poll thread makes records; the last kt::message of each, on any shard, gives it back.
// recycle() is destroy() without rd_kafka_message_destroy, so a stack-built message serves here.
BOOST_AUTO_TEST_CASE(records_given_back_on_other_threads_are_made_again_and_counted) {
    message_records records;
    rd_kafka_message_t raw{};
    raw.offset = 7;
    std::vector<message_data*> made;
    for (std::size_t i = 0; i < 8 * slab; ++i) made.push_back(records.make(&raw, 1, 0, 0));
    BOOST_TEST(records.live().count() == static_cast<std::int64_t>(8 * slab));
    BOOST_TEST(records.allocated_blocks() == 8 * slab);
    BOOST_TEST(made.front()->offset == 7);
    std::vector<std::thread> shards;
    for (std::size_t s = 0; s < 2; ++s)
        shards.emplace_back([&, s] {
            for (std::size_t i = s; i < made.size(); i += 2) message_records::recycle(made[i]);
        });
    for (auto& t : shards) t.join();
    BOOST_TEST(records.live().idle());
    // Made again from the blocks given back: no new slab, and only blocks made before.
    const std::set<message_data*> before(made.begin(), made.end());
    made.clear();
    for (std::size_t i = 0; i < 8 * slab; ++i) made.push_back(records.make(&raw, 1, 0, 0));
    BOOST_TEST(records.allocated_blocks() == 8 * slab);
    BOOST_TEST(std::ranges::all_of(made, [&](auto* r) { return before.contains(r); }));
    BOOST_TEST(std::set<message_data*>(made.begin(), made.end()).size() == made.size());
    for (auto* record : made) message_records::recycle(record);
}

BOOST_AUTO_TEST_CASE(a_drained_backlog_keeps_one_slab_and_none_goes_while_a_record_is_out) {
    message_records records;
    rd_kafka_message_t raw{};
    std::vector<message_data*> made;
    for (std::size_t i = 0; i < 40 * slab; ++i) made.push_back(records.make(&raw, 1, 0, 0));
    auto* last = made.back();
    made.pop_back();
    std::thread shard([&] {
        for (auto* record : made) message_records::recycle(record);
    });
    shard.join();
    records.trim_when_idle();  // one still out: its slab, and every other, stays
    BOOST_TEST(records.allocated_blocks() == 40 * slab);
    message_records::recycle(last);
    records.trim_when_idle();
    BOOST_TEST(records.allocated_blocks() == slab);
    BOOST_TEST(records.live().idle());
    auto* next = records.make(&raw, 1, 0, 0);  // from the slab kept
    BOOST_TEST(records.allocated_blocks() == slab);
    message_records::recycle(next);
}

BOOST_AUTO_TEST_SUITE_END()
