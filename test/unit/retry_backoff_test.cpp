// The wait before a retry: growth, the cap and the jitter (the timing of real retries is only
// bounded from below in the integration suite, since timers may fire late but never early).
#include <boost/test/unit_test.hpp>

#include <set>

#include "host/retry_backoff.hpp"

using namespace std::chrono_literals;
using kt::detail::retry_backoff;

BOOST_AUTO_TEST_SUITE(retry_backoff_rules)

BOOST_AUTO_TEST_CASE(without_jitter_the_wait_grows_by_the_multiplier_up_to_the_cap) {
    std::minstd_rand random(1);
    const kt::retry_policy policy{
        .initial_backoff = 40ms, .max_backoff = 500ms, .multiplier = 3.0, .jitter = 0.0};
    BOOST_TEST(retry_backoff(policy, 1, random).count() == 40);
    BOOST_TEST(retry_backoff(policy, 2, random).count() == 120);
    BOOST_TEST(retry_backoff(policy, 3, random).count() == 360);
    BOOST_TEST(retry_backoff(policy, 4, random).count() == 500);   // 1080 capped
    BOOST_TEST(retry_backoff(policy, 40, random).count() == 500);  // no overflow far out
}

BOOST_AUTO_TEST_CASE(a_multiplier_below_one_never_shrinks_the_wait) {
    std::minstd_rand random(1);
    const kt::retry_policy policy{.initial_backoff = 40ms, .multiplier = 0.5, .jitter = 0.0};
    BOOST_TEST(retry_backoff(policy, 5, random).count() == 40);
}

BOOST_AUTO_TEST_CASE(jitter_spreads_each_wait_over_its_whole_band_and_no_further) {
    std::minstd_rand random(7);
    const kt::retry_policy policy{
        .initial_backoff = 1000ms, .max_backoff = 2000ms, .multiplier = 2.0, .jitter = 0.25};
    for (unsigned attempt : {1u, 2u, 3u}) {
        const double base = attempt == 1 ? 1000 : 2000;  // the third is capped at 2000
        std::set<long> seen;
        for (int i = 0; i < 2000; ++i) seen.insert(retry_backoff(policy, attempt, random).count());
        BOOST_TEST(*seen.begin() >= base * 0.75, "attempt " << attempt);
        BOOST_TEST(*seen.rbegin() <= base * 1.25, "attempt " << attempt);
        // Spread over the band, not bunched: both outer tenths are reached.
        BOOST_TEST(*seen.begin() < base * 0.80, "attempt " << attempt);
        BOOST_TEST(*seen.rbegin() > base * 1.20, "attempt " << attempt);
        BOOST_TEST(seen.size() > 300u, "attempt " << attempt);
    }
}

BOOST_AUTO_TEST_CASE(jitter_outside_zero_to_one_is_clamped) {
    std::minstd_rand random(3);
    const kt::retry_policy policy{.initial_backoff = 100ms, .jitter = 5.0};
    for (int i = 0; i < 500; ++i) BOOST_TEST(retry_backoff(policy, 1, random).count() <= 200);
}

BOOST_AUTO_TEST_SUITE_END()
