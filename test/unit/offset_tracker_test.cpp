// Unit tests of the per (trigger, partition) offset tracker.
#define BOOST_TEST_MODULE offset_tracker
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "consumer/offset_tracker.hpp"

using kt::detail::offset_tracker;

BOOST_AUTO_TEST_CASE(nothing_is_committable_before_the_first_delivery) {
    offset_tracker t;
    BOOST_TEST(!t.committable().has_value());
    BOOST_TEST(t.idle());
}

BOOST_AUTO_TEST_CASE(the_lowest_unfinished_offset_is_committable) {
    offset_tracker t;
    for (int o = 10; o < 15; ++o) t.delivered(o);
    BOOST_TEST(*t.committable() == 10);
    BOOST_TEST(t.completed(12));
    BOOST_TEST(t.completed(11));
    BOOST_TEST(*t.committable() == 10);  // 10 still runs: nothing past it may be committed
    BOOST_TEST(t.completed(10));
    BOOST_TEST(*t.committable() == 13);
    BOOST_TEST(t.backlog() == 2u);
}

BOOST_AUTO_TEST_CASE(when_all_finished_the_commit_is_last_delivered_plus_one_across_gaps) {
    offset_tracker t;
    t.delivered(3);
    t.delivered(7);  // a gap (compaction, transaction marker) must not hold the commit back
    t.completed(7);
    t.completed(3);
    BOOST_TEST(*t.committable() == 8);
    BOOST_TEST(t.idle());
}

BOOST_AUTO_TEST_CASE(a_resumed_start_position_is_committable_until_later_deliveries) {
    offset_tracker t;
    t.start_at(40);  // a partition back after a loss, resuming where its work was complete
    BOOST_TEST(*t.committable() == 40);
    t.delivered(40);
    BOOST_TEST(*t.committable() == 40);  // 40 runs now
    t.completed(40);
    BOOST_TEST(*t.committable() == 41);
    t.start_at(10);  // never moves backwards
    BOOST_TEST(*t.committable() == 41);
}

BOOST_AUTO_TEST_CASE(unknown_or_repeated_completions_are_refused) {
    offset_tracker t;
    t.delivered(1);
    BOOST_TEST(!t.completed(2));
    BOOST_TEST(t.completed(1));
    BOOST_TEST(!t.completed(1));
}

namespace {

/// Checks `t` against a plain model: `offsets` delivered (or skipped) in order, `done` which of
/// them finished. The commit is the first unfinished one (or last + 1), and every offset above it
/// is in the finished ranges iff it finished. Returns the commit.
std::int64_t check_against_model(const offset_tracker& t, const std::vector<std::int64_t>& offsets,
                                 const std::vector<bool>& done) {
    const auto first_open = std::find(done.begin(), done.end(), false) - done.begin();
    const std::int64_t commit = first_open == static_cast<long>(offsets.size())
                                    ? offsets.back() + 1
                                    : offsets[static_cast<std::size_t>(first_open)];
    BOOST_TEST_REQUIRE(*t.committable() == commit);
    const auto ranges = t.finished_above(commit);
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        if (offsets[i] < commit) continue;
        const bool covered = std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) {
            return r.begin <= offsets[i] && offsets[i] < r.end;
        });
        BOOST_TEST_REQUIRE(covered == static_cast<bool>(done[i]));
    }
    return commit;
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_completion_orders_never_commit_past_an_unfinished_offset) {
    std::mt19937 rng(42);
    for (int round = 0; round < 200; ++round) {
        offset_tracker t;
        std::vector<std::int64_t> offsets;
        std::int64_t o = rng() % 5;
        for (int i = 0; i < 100; ++i) {
            offsets.push_back(o);
            t.delivered(o);
            o += 1 + rng() % 3;
        }
        std::vector<std::int64_t> order = offsets;
        std::shuffle(order.begin(), order.end(), rng);
        std::vector<bool> done(offsets.size(), false);
        for (auto finished : order) {
            BOOST_TEST_REQUIRE(t.completed(finished));
            done[std::find(offsets.begin(), offsets.end(), finished) - offsets.begin()] = true;
            check_against_model(t, offsets, done);
        }
    }
}

BOOST_AUTO_TEST_CASE(in_order_completions_leave_nothing_finished_above_the_commit) {
    offset_tracker t;
    for (std::int64_t o = 0; o < 10; ++o) t.delivered(o);
    for (std::int64_t o = 0; o < 5; ++o) BOOST_TEST_REQUIRE(t.completed(o));
    BOOST_TEST(*t.committable() == 5);
    BOOST_TEST(t.finished_above(5).empty());
    BOOST_TEST(t.completed(7));
    BOOST_TEST((t.finished_above(5) == kt::detail::offset_ranges{{7, 8}}));
}

BOOST_AUTO_TEST_CASE(a_run_finished_in_order_completes_every_offset_in_it_and_no_other) {
    offset_tracker t;
    for (std::int64_t o : {10, 11, 12, 14, 15}) t.delivered(o);  // 13: a gap
    BOOST_TEST(t.completed(10, 14) == 4u);                       // 13 carries no message
    BOOST_TEST(*t.committable() == 15);
    BOOST_TEST(t.backlog() == 1u);
    BOOST_TEST(t.completed(10, 14) == 0u);  // repeated
    BOOST_TEST(t.completed(15, 15) == 1u);
    BOOST_TEST(*t.committable() == 16);
    BOOST_TEST(t.idle());
}

// Against a plain model (a set of in-flight offsets): deliveries with gaps and skips, then
// single completions and runs in random order; every answer must match the model's.
BOOST_AUTO_TEST_CASE(runs_and_single_completions_in_any_order_match_a_plain_model) {
    std::mt19937 rng(7);
    for (int round = 0; round < 300; ++round) {
        offset_tracker t;
        std::vector<std::int64_t> offsets;  // delivered or skipped, in order
        std::vector<bool> done;
        std::int64_t o = rng() % 5;
        for (int i = 0; i < 60; ++i) {
            const bool skip = i > 0 && rng() % 7 == 0;
            if (skip)
                t.skipped(o);
            else
                t.delivered(o);
            offsets.push_back(o);
            done.push_back(skip);
            o += 1 + (rng() % 4 == 0 ? rng() % 3 : 0);
        }
        for (int step = 0; step < 80; ++step) {
            const auto a = offsets[rng() % offsets.size()];
            const auto b = rng() % 2 ? a : a + static_cast<std::int64_t>(rng() % 8);
            std::size_t expected_finished = 0;
            for (std::size_t i = 0; i < offsets.size(); ++i)
                if (offsets[i] >= a && offsets[i] <= b && !done[i]) {
                    done[i] = true;
                    ++expected_finished;
                }
            BOOST_TEST_REQUIRE(t.completed(a, b) == expected_finished);
            check_against_model(t, offsets, done);
            const auto open = std::find(done.begin(), done.end(), false) - done.begin();
            BOOST_TEST_REQUIRE(t.backlog() == offsets.size() - static_cast<std::size_t>(open));
        }
    }
}
