// Unit tests of outage timing: when a consumer that reaches no broker is recreated.
#include <boost/test/unit_test.hpp>

#include "consumer/outage_watch.hpp"

using kt::detail::outage_watch;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(outage_watch_suite)

namespace {
const auto t0 = outage_watch::clock::time_point{} + 1h;
}

BOOST_AUTO_TEST_CASE(nothing_is_due_without_an_outage) {
    outage_watch w(10s);
    BOOST_TEST(!w.in_outage());
    BOOST_TEST(!w.due(t0 + 1h).has_value());
}

BOOST_AUTO_TEST_CASE(recreation_is_due_once_the_outage_lasted_recreate_after) {
    outage_watch w(10s);
    BOOST_TEST(w.down(t0));
    BOOST_TEST(!w.down(t0 + 5s));  // a later report does not restart the outage
    BOOST_TEST(!w.due(t0 + 9s).has_value());
    BOOST_TEST((*w.due(t0 + 10s) == 10s));
}

BOOST_AUTO_TEST_CASE(each_recreation_in_a_row_doubles_the_wait_up_to_sixteen_times) {
    outage_watch w(1s);
    w.down(t0);
    auto now = t0;
    for (int doublings = 0; doublings < 6; ++doublings) {
        const auto wait = 1s * (1 << std::min(doublings, 4));
        BOOST_TEST(!w.due(now + wait - 1ms).has_value());
        BOOST_TEST(w.due(now + wait).has_value());
        now += wait;
        w.recreated(now);
        BOOST_TEST(w.in_outage());  // still no broker until one is reported
    }
}

BOOST_AUTO_TEST_CASE(a_broker_answering_ends_the_outage_and_the_doubling) {
    outage_watch w(1s);
    w.down(t0);
    w.recreated(t0 + 1s);
    w.reached();
    BOOST_TEST(!w.in_outage());
    BOOST_TEST(!w.due(t0 + 1h).has_value());
    BOOST_TEST(w.down(t0 + 2s));
    BOOST_TEST(w.due(t0 + 3s).has_value());  // back to one interval
}

BOOST_AUTO_TEST_CASE(a_zero_interval_never_recreates) {
    outage_watch w(0ms);
    w.down(t0);
    BOOST_TEST(w.in_outage());
    BOOST_TEST(!w.due(t0 + 24h).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
