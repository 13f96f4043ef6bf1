// Unit tests of the completion map: its encoding in commit metadata, the fallbacks when it does
// not fit, metadata that is not ours, and what the ledger commits and skips with it.
#include <boost/test/unit_test.hpp>

#include <array>
#include <string>

#include "consumer/commit_ledger.hpp"
#include "consumer/completion_map.hpp"

namespace kd = kt::detail;
using kd::completion_map;
using kd::offset_ranges;

BOOST_AUTO_TEST_SUITE(completion_map_suite)

namespace {

const kd::partition_id p0{0, 0};
// Trigger ids 1 and 2 with the map keys of the names "fast" and "slow".
const std::array<kd::ledger_trigger, 2> fast_and_slow{
    {{1, kd::trigger_key("fast")}, {2, kd::trigger_key("slow")}}};

completion_map round_trip(const completion_map& map, std::size_t budget = 3072) {
    const auto encoded = kd::encode(map, budget);
    BOOST_TEST(encoded.text.size() <= budget);
    std::string why;
    auto decoded = kd::decode(encoded.text, map.base, &why);
    BOOST_TEST_REQUIRE(decoded.has_value(), why);
    return *decoded;
}

/// The ledger's one commit entry, with the completion map it carries decoded.
struct decoded_commit {
    kd::commit_entry entry;
    completion_map map;
};
decoded_commit single_commit(kd::commit_ledger& ledger, bool resend) {
    auto entries = ledger.to_commit(nullptr, resend);
    BOOST_TEST_REQUIRE(entries.size() == 1u);
    auto map = kd::decode(entries[0].metadata, entries[0].offset);
    BOOST_TEST_REQUIRE(map.has_value());
    return {std::move(entries[0]), std::move(*map)};
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_map_comes_back_as_it_was_written) {
    const completion_map map{
        1'000'000'007,
        {{11, {{1'000'000'007, 1'000'000'009}, {1'000'000'500, 1'000'001'000}}},
         {12, {{1'000'000'010, 1'000'000'011}}}}};
    const auto back = round_trip(map);
    BOOST_TEST(back.base == map.base);
    BOOST_TEST_REQUIRE(back.sections.size() == 2u);
    BOOST_TEST((back.sections[0].second == map.sections[0].second));
    BOOST_TEST((back.sections[1].second == map.sections[1].second));
    BOOST_TEST(back.find(12) != nullptr);
    BOOST_TEST(back.find(13) == nullptr);  // a trigger without a section runs everything
}

// Found by fuzz/completion_map_fuzz.cpp: dropping the empty section let the section for every
// trigger answer for a trigger that had finished nothing.
BOOST_AUTO_TEST_CASE(an_empty_section_beside_one_for_every_trigger_is_kept) {
    const completion_map map{1, {{0x400000, {}}, {kd::every_trigger, {{2, 128}}}}};
    const auto decoded = round_trip(map);
    BOOST_TEST_REQUIRE(decoded.find(0x400000));
    BOOST_TEST(decoded.find(0x400000)->empty());
    BOOST_TEST((*decoded.find(7) == offset_ranges{{2, 128}}));
}

BOOST_AUTO_TEST_CASE(offsets_in_any_order_make_up_disjoint_ranges) {
    BOOST_TEST((kd::ranges_of({7, 3, 4, 4, 10, 5, 9}) == offset_ranges{{3, 6}, {7, 8}, {9, 11}}));
    BOOST_TEST(kd::ranges_of({}).empty());
}

BOOST_AUTO_TEST_CASE(an_empty_map_is_empty_metadata) {
    const completion_map map{5, {{11, {}}, {12, {}}}};
    BOOST_TEST(kd::encode(map, 3072).text.empty());
    const auto back = kd::decode("", 5);
    BOOST_TEST_REQUIRE(back.has_value());
    BOOST_TEST(back->empty());
}

BOOST_AUTO_TEST_CASE(typical_gaps_take_about_two_bytes_per_range) {
    // 100 finished runs of 3 above the committed offset, 2 unfinished between them.
    offset_ranges runs;
    for (std::int64_t i = 0; i < 100; ++i) runs.push_back({1000 + 5 * i + 2, 1000 + 5 * i + 5});
    const auto encoded = kd::encode({1000, {{11, runs}}}, 3072);
    BOOST_TEST(encoded.complete);
    // 200 one-byte varints plus header and checksum, in base64.
    BOOST_TEST(encoded.text.size() < 300u, encoded.text.size());
}

BOOST_AUTO_TEST_CASE(sections_that_do_not_fit_give_way_to_their_intersection) {
    offset_ranges a, b;
    for (std::int64_t i = 0; i < 800; ++i) {
        a.push_back({10 * i + 1, 10 * i + 8});
        b.push_back({10 * i + 3, 10 * i + 9});
    }
    const completion_map map{0, {{11, a}, {12, b}}};
    const auto encoded = kd::encode(map, 3072);
    BOOST_TEST(encoded.complete);
    BOOST_TEST(!encoded.per_trigger);
    const auto back = kd::decode(encoded.text, 0);
    BOOST_TEST_REQUIRE(back.has_value());
    // Both triggers find the common section: only what both finished.
    BOOST_TEST((*back->find(11) == kd::intersect(a, b)));
    BOOST_TEST((*back->find(12) == kd::intersect(a, b)));
    BOOST_TEST((back->find(11)->front() == kd::offset_range{3, 8}));
}

BOOST_AUTO_TEST_CASE(a_map_too_large_even_as_an_intersection_is_cut_to_a_prefix) {
    offset_ranges runs;
    for (std::int64_t i = 0; i < 5000; ++i) runs.push_back({2 * i + 1, 2 * i + 2});
    const auto encoded = kd::encode({0, {{11, runs}}}, 3072);
    BOOST_TEST(!encoded.complete);
    BOOST_TEST(encoded.text.size() <= 3072u);
    const auto back = kd::decode(encoded.text, 0);
    BOOST_TEST_REQUIRE(back.has_value());
    const auto& kept = *back->find(11);
    BOOST_TEST(kept.size() > 1000u);
    BOOST_TEST(kept.size() < runs.size());
    BOOST_TEST(
        (offset_ranges(runs.begin(), runs.begin() + static_cast<long>(kept.size())) == kept));
}

BOOST_AUTO_TEST_CASE(triggers_whose_names_hash_alike_share_only_what_both_finished) {
    const completion_map map{0, {{11, {{1, 5}}}, {11, {{3, 9}}}}};
    const auto encoded = kd::encode(map, 3072);
    BOOST_TEST(!encoded.per_trigger);
    BOOST_TEST((*kd::decode(encoded.text, 0)->find(11) == offset_ranges{{3, 5}}));
}

BOOST_AUTO_TEST_CASE(metadata_we_did_not_write_is_ignored_with_the_reason) {
    std::string why;
    BOOST_TEST(!kd::decode("hello", 7, &why));  // a human's note
    BOOST_TEST(why == "not base64");
    BOOST_TEST(!kd::decode("AAECAwQFBgc=", 7, &why));  // someone else's binary map
    BOOST_TEST(why == "not a kafka-triggers completion map");
    BOOST_TEST(!kd::decode("{\"owner\":\"streams\"}", 7, &why));
}

BOOST_AUTO_TEST_CASE(a_damaged_or_misplaced_map_is_never_read) {
    const auto text = kd::encode({100, {{11, {{101, 150}}}}}, 3072).text;
    std::string why;
    // Written for offset 100: if the committed offset is another (reset by a tool that kept the
    // metadata), skipping by it could skip unfinished work.
    BOOST_TEST(!kd::decode(text, 90, &why));
    BOOST_TEST(why == "completion map written for offset 100, committed 90");
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto damaged = text;
        damaged[i] = damaged[i] == 'A' ? 'B' : 'A';
        const auto back = kd::decode(damaged, 100);
        // Any change is caught (the checksum) unless it only touched base64 padding bits.
        if (back) BOOST_TEST((*back->find(11) == offset_ranges{{101, 150}}));
    }
    BOOST_TEST(!kd::decode(text.substr(0, text.size() - 4), 100));
}

BOOST_AUTO_TEST_CASE(the_tracker_reports_finished_runs_across_offsets_without_a_message) {
    kd::offset_tracker t;
    for (std::int64_t o : {10, 11, 12, 15, 16, 17}) t.delivered(o);  // 13, 14: no message
    for (std::int64_t o : {12, 15, 17}) t.completed(o);
    BOOST_TEST(*t.committable() == 10);
    BOOST_TEST((t.finished_above(10) == offset_ranges{{12, 16}, {17, 18}}));
    BOOST_TEST(t.completed(10));
    BOOST_TEST((t.finished_above(10) == offset_ranges{{10, 11}, {12, 16}, {17, 18}}));
}

BOOST_AUTO_TEST_CASE(each_trigger_commits_its_own_progress_above_the_slowest) {
    kd::commit_ledger ledger(kt::delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, fast_and_slow);
    for (std::int64_t o = 0; o < 10; ++o) {
        p.delivered(1, o);
        p.delivered(2, o);
        p.completed(1, 1, o);  // fast finished everything
    }
    p.completed(1, 2, 0);
    p.completed(1, 2, 4);  // slow: 0 and 4
    const auto commit = single_commit(ledger, false);
    BOOST_TEST(commit.entry.offset == 1);
    BOOST_TEST((*commit.map.find(kd::trigger_key("fast")) == offset_ranges{{1, 10}}));
    BOOST_TEST((*commit.map.find(kd::trigger_key("slow")) == offset_ranges{{4, 5}}));
    ledger.sent(std::vector{commit.entry});
    BOOST_TEST(ledger.to_commit(nullptr, false).empty());
    p.completed(1, 2, 7);  // the committed offset stays, the map grows: commit again
    BOOST_TEST(ledger.to_commit(nullptr, false).size() == 1u);
}

BOOST_AUTO_TEST_CASE(after_a_restart_each_trigger_skips_what_it_finished_and_runs_the_rest) {
    const completion_map committed{
        1, {{kd::trigger_key("fast"), {{1, 10}}}, {kd::trigger_key("slow"), {{4, 5}}}}};
    kd::commit_ledger ledger(kt::delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, fast_and_slow, -1, &committed);
    BOOST_TEST(p.restoring());
    std::vector<std::int64_t> fast_runs, slow_runs;
    for (std::int64_t o = 1; o < 12; ++o) {
        if (!p.skips(1, o)) fast_runs.push_back(o);
        if (!p.skips(2, o, 1)) slow_runs.push_back(o);
        for (auto [trigger, runs] : {std::pair{1u, &fast_runs}, std::pair{2u, &slow_runs}})
            if (!runs->empty() && runs->back() == o) p.delivered(trigger, o);
    }
    BOOST_TEST((fast_runs == std::vector<std::int64_t>{10, 11}));
    BOOST_TEST((slow_runs == std::vector<std::int64_t>{1, 2, 3, 5, 6, 7, 8, 9, 10, 11}));
    BOOST_TEST(!p.restoring());
    // The skipped ones count as finished: fast commits past them once 10 and 11 finish.
    for (std::int64_t o : {10, 11}) p.completed(1, 1, o);
    BOOST_TEST(*p.finished_above(1).find(kd::trigger_key("fast")) == (offset_ranges{{1, 12}}));
}

BOOST_AUTO_TEST_CASE(a_crash_while_restoring_keeps_what_was_still_to_be_skipped) {
    const completion_map committed{1, {{kd::trigger_key("fast"), {{5, 10}}}}};
    kd::commit_ledger ledger(kt::delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, fast_and_slow, -1, &committed);
    for (std::int64_t o = 1; o < 3; ++o) {  // fast has not reached its skipped range yet
        BOOST_TEST(!p.skips(1, o));
        p.delivered(1, o);
        p.delivered(2, o);
    }
    const auto commit = single_commit(ledger, true);
    BOOST_TEST((*commit.map.find(kd::trigger_key("fast")) == offset_ranges{{5, 10}}));
}

BOOST_AUTO_TEST_CASE(a_range_half_skipped_is_committed_from_the_committed_offset_on) {
    // fast skips 1..99 and is past them; slow holds the commit at 50: the map starts at 50.
    const completion_map committed{1, {{kd::trigger_key("fast"), {{1, 100}}}}};
    kd::commit_ledger ledger(kt::delivery_guarantee::at_least_once);
    auto& p = ledger.assign(p0, 1, fast_and_slow, -1, &committed);
    for (std::int64_t o = 1; o < 60; ++o) {
        BOOST_TEST(p.skips(1, o));
        p.delivered(2, o);
        if (o < 50) p.completed(1, 2, o);
    }
    const auto commit = single_commit(ledger, true);
    BOOST_TEST(commit.entry.offset == 50);
    BOOST_TEST((*commit.map.find(kd::trigger_key("fast")) == offset_ranges{{50, 100}}));
}

BOOST_AUTO_TEST_CASE(the_budget_is_three_quarters_of_the_broker_limit_capped_at_32_kib) {
    BOOST_TEST(kd::commit_ledger::map_budget_for(4096) == 3072u);  // Kafka's default
    BOOST_TEST(kd::commit_ledger::map_budget_for(1000) == 750u);
    BOOST_TEST(kd::commit_ledger::map_budget_for(3) == 0u);  // too small for any map
    BOOST_TEST(kd::commit_ledger::map_budget_for(1 << 20) == 32768u);
}

BOOST_AUTO_TEST_CASE(a_partition_whose_map_does_not_fit_is_marked_until_it_does) {
    kd::commit_ledger ledger(kt::delivery_guarantee::at_least_once);
    ledger.set_map_budget(64);
    constexpr std::array<kd::ledger_trigger, 1> one{{{1, 11}}};
    auto& p = ledger.assign(p0, 1, one);
    for (std::int64_t o = 0; o < 200; ++o) p.delivered(1, o);
    for (std::int64_t o = 1; o < 200; o += 2) p.completed(1, 1, o);  // every other one
    auto entries = ledger.to_commit(nullptr, false);
    BOOST_TEST(p.map_full());
    BOOST_TEST(entries[0].metadata.size() <= 64u);
    BOOST_TEST(p.map_bytes() == entries[0].metadata.size());  // what metrics show
    BOOST_TEST(p.map_bytes() > 0u);
    for (std::int64_t o = 0; o < 200; o += 2) p.completed(1, 1, o);
    entries = ledger.to_commit(nullptr, false);
    BOOST_TEST(!p.map_full());
    BOOST_TEST(entries[0].offset == 200);
}

BOOST_AUTO_TEST_CASE(at_most_once_commits_carry_no_map) {
    kd::commit_ledger ledger(kt::delivery_guarantee::at_most_once);
    constexpr std::array<kd::ledger_trigger, 1> one{{{1, 11}}};
    auto& p = ledger.assign(p0, 1, one);
    p.delivered(1, 0);
    p.delivered(1, 1);
    p.completed(1, 1, 1);
    p.released(2);
    const auto entries = ledger.to_commit(nullptr, true);
    BOOST_TEST_REQUIRE(entries.size() == 1u);
    BOOST_TEST(entries[0].metadata.empty());
}

BOOST_AUTO_TEST_SUITE_END()
