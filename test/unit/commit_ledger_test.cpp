// Unit tests of the commit ledger: what a consumer commits for its partitions, without a broker.
#define BOOST_TEST_MODULE consumer_parts
#include <boost/test/unit_test.hpp>

#include <array>
#include <vector>

#include "consumer/commit_ledger.hpp"

using kt::delivery_guarantee;
using kt::detail::commit_entry;
using kt::detail::commit_ledger;
using kt::detail::ledger_trigger;
using kt::detail::partition_id;

BOOST_AUTO_TEST_SUITE(commit_ledger_suite)

namespace {

const partition_id p0{0, 0}, p1{0, 1}, other_topic{1, 0};
// Ids 7 and 9; their map keys, in these tests, are 107 and 109.
constexpr std::array<ledger_trigger, 2> two_triggers{{{7, 107}, {9, 109}}};
constexpr std::array<ledger_trigger, 1> one_trigger{{{7, 107}}};

std::vector<commit_entry> everything(commit_ledger& ledger) {
    return ledger.to_commit(nullptr, true);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_partition_commits_the_lowest_offset_not_completed_by_every_trigger) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, two_triggers);
    for (int o = 10; o < 13; ++o) {
        p.delivered(7, o);
        p.delivered(9, o);
    }
    for (int o = 10; o < 13; ++o) BOOST_TEST(p.completed(1, 7, o));  // trigger 7 is done
    BOOST_TEST(p.completed(1, 9, 10));
    BOOST_TEST(*ledger.committable(p0) == 11);  // trigger 9 still runs 11
    BOOST_TEST(p.completed(1, 9, 12));
    BOOST_TEST(*ledger.committable(p0) == 11);
    BOOST_TEST(p.completed(1, 9, 11));
    BOOST_TEST(*ledger.committable(p0) == 13);
    BOOST_TEST(ledger.idle());
}

BOOST_AUTO_TEST_CASE(a_completion_from_an_earlier_generation_of_the_partition_is_fenced) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.assign(p0, 1, one_trigger).delivered(7, 5);
    ledger.revoke(p0);
    BOOST_TEST(ledger.find(p0) == nullptr);  // a completion for a revoked partition finds nothing
    auto& again = ledger.assign(p0, 2, one_trigger);
    again.delivered(7, 5);
    BOOST_TEST(!again.completed(1, 7, 5));  // the handler of the first assignment finishing late
    BOOST_TEST(*ledger.committable(p0) == 5);
    BOOST_TEST(again.completed(2, 7, 5));
    BOOST_TEST(*ledger.committable(p0) == 6);
}

BOOST_AUTO_TEST_CASE(a_wrong_place_hint_still_finds_the_trigger) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, two_triggers);
    BOOST_TEST(p.delivered(9, 4, 0) == 1u);   // trigger 9 is second, the hint says first
    BOOST_TEST(p.delivered(7, 4, 99) == 1u);  // out of range
    BOOST_TEST(p.backlog(9, 0) == 1u);
    BOOST_TEST(p.backlog(7, 1) == 1u);
    BOOST_TEST(p.delivered(8, 4, 1) == 0u);  // not on this partition: nothing recorded
    BOOST_TEST(*ledger.committable(p0) == 4);
}

BOOST_AUTO_TEST_CASE(a_duplicate_or_unknown_completion_changes_nothing) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, one_trigger);
    p.delivered(7, 1);
    p.delivered(7, 2);
    BOOST_TEST(p.completed(1, 7, 2));
    BOOST_TEST(!p.completed(1, 7, 2));
    BOOST_TEST(!p.completed(1, 8, 1));  // no such trigger on the partition
    BOOST_TEST(*ledger.committable(p0) == 1);
    BOOST_TEST(p.backlog(7) == 2u);
}

BOOST_AUTO_TEST_CASE(the_commit_list_holds_only_partitions_that_moved_since_the_last_one_sent) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.assign(p0, 1, one_trigger).delivered(7, 3);
    ledger.assign(p1, 2, one_trigger).delivered(7, 8);
    ledger.assign(other_topic, 3, one_trigger);  // nothing delivered: nothing to commit
    ledger.find(p0)->completed(1, 7, 3);
    ledger.find(p1)->completed(2, 7, 8);
    const std::vector<commit_entry> first{{p0, 4}, {p1, 9}};
    BOOST_TEST((ledger.to_commit(nullptr, false) == first));
    ledger.sent(first);
    BOOST_TEST(ledger.to_commit(nullptr, false).empty());
    BOOST_TEST((everything(ledger) == first));  // an explicit commit resends what was sent

    ledger.find(p1)->delivered(7, 9);
    ledger.find(p1)->completed(2, 7, 9);
    BOOST_TEST((ledger.to_commit(nullptr, false) == std::vector<commit_entry>{{p1, 10}}));
    const std::vector<partition_id> only{p0};
    BOOST_TEST(ledger.to_commit(&only, false).empty());
}

BOOST_AUTO_TEST_CASE(a_refused_commit_is_sent_again) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.assign(p0, 1, one_trigger).delivered(7, 0);
    ledger.assign(p1, 2, one_trigger).delivered(7, 0);
    ledger.find(p0)->completed(1, 7, 0);
    ledger.find(p1)->completed(2, 7, 0);
    const auto list = ledger.to_commit(nullptr, false);
    ledger.sent(list);
    ledger.refused(std::vector<commit_entry>{{p0, 1}});
    BOOST_TEST((ledger.to_commit(nullptr, false) == std::vector<commit_entry>{{p0, 1}}));
    ledger.sent(list);
    ledger.refused_all();
    BOOST_TEST((ledger.to_commit(nullptr, false) == list));
}

BOOST_AUTO_TEST_CASE(a_trigger_added_later_holds_the_commit_back_from_its_first_delivery) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, one_trigger);
    p.delivered(7, 0);
    p.completed(1, 7, 0);
    ledger.add_trigger(0, {9, 109});
    ledger.add_trigger(1, {11, 111});          // another topic: not on p0
    BOOST_TEST(*ledger.committable(p0) == 1);  // the new trigger has seen nothing yet
    p.delivered(7, 1);
    p.delivered(9, 1);
    p.completed(1, 7, 1);
    BOOST_TEST(*ledger.committable(p0) == 1);
    BOOST_TEST(!ledger.idle());
    BOOST_TEST(p.backlog(11) == 0u);
    ledger.remove_trigger(0, 9);  // removed (its unfinished work is redelivered to the next owner)
    BOOST_TEST(*ledger.committable(p0) == 2);
    BOOST_TEST(ledger.idle());
}

BOOST_AUTO_TEST_CASE(a_partition_resumed_at_a_known_position_commits_it_before_any_delivery) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.assign(p0, 1, two_triggers, 42);
    BOOST_TEST((everything(ledger) == std::vector<commit_entry>{{p0, 42}}));
    commit_ledger at_most_once(delivery_guarantee::at_most_once);
    at_most_once.assign(p0, 1, two_triggers, 42);
    BOOST_TEST(*at_most_once.committable(p0) == 42);
}

BOOST_AUTO_TEST_CASE(at_most_once_commits_the_position_handed_out_whatever_is_still_running) {
    commit_ledger ledger(delivery_guarantee::at_most_once);
    auto& p = ledger.assign(p0, 1, one_trigger);
    BOOST_TEST(!ledger.committable(p0).has_value());
    p.released(6);
    p.delivered(7, 5);  // still running: at most once never waits for it
    BOOST_TEST(*ledger.committable(p0) == 6);
}

BOOST_AUTO_TEST_CASE(idle_looks_only_at_the_partitions_asked_about) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.assign(p0, 1, one_trigger).delivered(7, 0);
    ledger.assign(p1, 2, one_trigger);
    const std::vector<partition_id> quiet{p1, other_topic};
    const std::vector<partition_id> busy{p0};
    BOOST_TEST(ledger.idle(&quiet));
    BOOST_TEST(!ledger.idle(&busy));
    BOOST_TEST(!ledger.idle());
}

BOOST_AUTO_TEST_CASE(acknowledged_offsets_never_move_backwards) {
    commit_ledger ledger(delivery_guarantee::at_least_once);
    ledger.acknowledge("t", 0, 10);
    ledger.acknowledge("t", 0, 7);      // an older commit answered late
    ledger.acknowledge("t", 1, -1001);  // no offset: not a commit
    const auto acknowledged = ledger.acknowledged();
    BOOST_TEST(acknowledged.at("t").at(0) == 10);
    BOOST_TEST(acknowledged.at("t").count(1) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
