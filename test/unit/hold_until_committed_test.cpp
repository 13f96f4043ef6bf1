// Unit tests of at-most-once holding: nothing is handed out before a commit past it is
// acknowledged.
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "consumer/hold_until_committed.hpp"

using kt::detail::commit_entry;
using kt::detail::partition_id;
using hold = kt::detail::basic_hold_until_committed<std::string>;
using clock_type = hold::clock;

BOOST_AUTO_TEST_SUITE(hold_until_committed_suite)

namespace {

const partition_id p0{0, 0}, p1{0, 1};
const auto t0 = clock_type::time_point{} + std::chrono::hours(1);

struct released {
    std::vector<std::pair<partition_id, std::string>> items;
    auto sink() {
        return [this](const partition_id& id, std::string item) { items.emplace_back(id, item); };
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(nothing_is_due_until_something_is_held) {
    hold h;
    BOOST_TEST(!h.commit_due(t0));
    BOOST_TEST(h.hold(p0, 4, "a") == 1u);
    BOOST_TEST(h.commit_due(t0));
}

BOOST_AUTO_TEST_CASE(
    the_commit_covers_each_partition_up_to_the_offset_after_its_last_held_message) {
    hold h;
    h.hold(p0, 4, "a");
    h.hold(p0, 5, "b");
    h.hold(p1, 9, "c");
    BOOST_TEST((h.to_commit() == std::vector<commit_entry>{{p0, 6}, {p1, 10}}));
}

BOOST_AUTO_TEST_CASE(messages_are_released_only_below_the_acknowledged_offset_and_in_order) {
    hold h;
    h.hold(p0, 4, "a");
    h.hold(p0, 5, "b");
    h.commit_sent();
    h.hold(p0, 6, "c");             // fetched while the commit was in flight: not covered by it
    BOOST_TEST(!h.commit_due(t0));  // one commit in flight at a time
    released r;
    h.committed(std::vector<commit_entry>{{p0, 6}}, r.sink());
    BOOST_TEST(r.items.size() == 2u);
    BOOST_TEST(r.items[0].second == "a");
    BOOST_TEST(r.items[1].second == "b");
    BOOST_TEST(h.held(p0) == 1u);
    BOOST_TEST(h.commit_due(t0));  // "c" waits for the next commit
    BOOST_TEST((h.to_commit() == std::vector<commit_entry>{{p0, 7}}));
}

BOOST_AUTO_TEST_CASE(a_refused_commit_releases_nothing_and_is_retried_after_a_pause) {
    hold h;
    h.hold(p0, 1, "a");
    h.commit_sent();
    h.commit_failed(t0);
    BOOST_TEST(h.held(p0) == 1u);
    BOOST_TEST(!h.commit_due(t0 + hold::retry_after / 2));
    BOOST_TEST(h.commit_due(t0 + hold::retry_after));
}

BOOST_AUTO_TEST_CASE(a_revoked_partition_drops_what_it_held_and_a_late_answer_releases_nothing) {
    hold h;
    h.hold(p0, 1, "a");
    h.hold(p1, 1, "b");
    h.commit_sent();
    h.forget(p0);
    released r;
    h.committed(std::vector<commit_entry>{{p0, 2}, {p1, 2}}, r.sink());
    BOOST_TEST(r.items.size() == 1u);
    BOOST_TEST((r.items[0].first == p1));
    BOOST_TEST(!h.commit_due(t0));  // nothing held any more
}

BOOST_AUTO_TEST_CASE(reset_forgets_the_commit_in_flight) {
    hold h;
    h.hold(p0, 1, "a");
    h.commit_sent();
    h.reset();
    BOOST_TEST(!h.in_flight());
    BOOST_TEST(h.held(p0) == 0u);
    h.hold(p0, 2, "b");
    BOOST_TEST(h.commit_due(t0));
}

BOOST_AUTO_TEST_SUITE_END()
