// Unit tests of the trigger option rules shared by trigger_host::add_trigger and the config file.
#include <boost/test/unit_test.hpp>

#include "host/trigger_validation.hpp"

using kt::detail::find_problem;
using kt::detail::handler_kind;

namespace {

kt::trigger_options valid() {
    kt::trigger_options o;
    o.name = "t";
    o.topic = "orders";
    o.dead_letter.topic = "orders.dlq";
    return o;
}

std::string field_of(const kt::trigger_options& o, std::optional<handler_kind> kind) {
    auto problem = find_problem(o, kind);
    return problem ? problem->field : "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(trigger_validation_suite)

BOOST_AUTO_TEST_CASE(valid_options_have_no_problem_whatever_the_handler) {
    for (auto kind :
         {handler_kind::plain, handler_kind::transform, handler_kind::batch, handler_kind::pull})
        BOOST_TEST(!find_problem(valid(), kind).has_value());
    BOOST_TEST(!find_problem(valid(), std::nullopt).has_value());
}

BOOST_AUTO_TEST_CASE(each_rule_names_its_field) {
    auto o = valid();
    o.name.clear();
    BOOST_TEST(field_of(o, handler_kind::plain) == "name");
    o = valid();
    o.topic.clear();
    BOOST_TEST(field_of(o, handler_kind::plain) == "topic");
    o = valid();
    o.retry.initial_backoff = std::chrono::milliseconds(500);
    o.retry.max_backoff = std::chrono::milliseconds(100);
    BOOST_TEST(field_of(o, std::nullopt) == "retry.max_backoff");
    BOOST_TEST(find_problem(o, std::nullopt)->message ==
               "max_backoff (100 ms) is below initial_backoff (500 ms)");
    o = valid();
    o.dead_letter.topic = "orders";
    BOOST_TEST(field_of(o, handler_kind::plain) == "dead_letter.topic");
    BOOST_TEST(
        field_of(o, handler_kind::pull).empty());  // a pull subscription writes no dead letters
}

BOOST_AUTO_TEST_CASE(
    exactly_once_needs_a_transform_handler_and_is_checked_only_when_the_kind_is_known) {
    auto o = valid();
    o.delivery = kt::delivery_guarantee::exactly_once;
    BOOST_TEST(!find_problem(o, handler_kind::transform).has_value());
    BOOST_TEST(field_of(o, handler_kind::plain) == "delivery");
    BOOST_TEST(field_of(o, handler_kind::pull) == "delivery");
    BOOST_TEST(find_problem(o, handler_kind::batch)->message.find("batch triggers") == 0u);
    BOOST_TEST(!find_problem(o, std::nullopt).has_value());  // the config file cannot tell
}

BOOST_AUTO_TEST_SUITE_END()
