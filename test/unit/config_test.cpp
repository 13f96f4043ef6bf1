// Unit tests of sharing keys, secret redaction and config validation.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <ostream>
#include <string>
#include <vector>

#include <kt/config.hpp>
#include <kt/errors.hpp>

#include <kt/log.hpp>

#include "log.hpp"
#include "rdkafka_handles.hpp"

using kt::consumer_config;
using kt::sharing;
using kt::sharing_key;

namespace kt {
std::ostream& operator<<(std::ostream& os, const sharing_key& key) {
    return os << key.canonical();
}
}  // namespace kt

namespace {
consumer_config base() {
    return {{"bootstrap.servers", "b1:9092,b2:9092"},
            {"group.id", "orders"},
            {"security.protocol", "sasl_ssl"},
            {"sasl.username", "svc"},
            {"sasl.password", "hunter2"}};
}
}  // namespace

BOOST_AUTO_TEST_CASE(equal_configs_share_whatever_the_bootstrap_order_and_case) {
    auto a = base();
    auto b = base();
    b.set("bootstrap.servers", " B2:9092 , b1:9092");
    BOOST_TEST(sharing_key::of(a, sharing::per_group, "t1", "x") ==
               sharing_key::of(b, sharing::per_group, "t2", "y"));
}

BOOST_AUTO_TEST_CASE(configs_differing_only_in_sasl_password_do_not_share) {
    auto other = base();
    other.set("sasl.password", "hunter3");
    BOOST_TEST(!(sharing_key::of(base(), sharing::per_group, "t", "x") ==
                 sharing_key::of(other, sharing::per_group, "t", "x")));
}

BOOST_AUTO_TEST_CASE(a_sharing_key_holds_no_secret_in_clear) {
    const auto key = sharing_key::of(base(), sharing::per_group, "t", "x");
    BOOST_TEST(key.canonical().find("hunter2") == std::string::npos);
    BOOST_TEST(key.canonical().find("sasl.password=sha256:") != std::string::npos);
    BOOST_TEST(kt::redacted(base()).find("hunter2") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(any_other_property_difference_separates_consumers) {
    auto other = base();
    other.set("fetch.min.bytes", "1000");
    BOOST_TEST(!(sharing_key::of(base(), sharing::per_group, "t", "x") ==
                 sharing_key::of(other, sharing::per_group, "t", "x")));
}

BOOST_AUTO_TEST_CASE(per_topic_separates_topics_and_off_separates_every_trigger) {
    BOOST_TEST(!(sharing_key::of(base(), sharing::per_topic, "a", "x") ==
                 sharing_key::of(base(), sharing::per_topic, "b", "x")));
    BOOST_TEST(sharing_key::of(base(), sharing::per_topic, "a", "x") ==
               sharing_key::of(base(), sharing::per_topic, "a", "y"));
    BOOST_TEST(!(sharing_key::of(base(), sharing::off, "a", "x") ==
                 sharing_key::of(base(), sharing::off, "a", "y")));
}

BOOST_AUTO_TEST_CASE(secret_properties_are_recognised) {
    for (const char* name : {"sasl.password", "ssl.key.password", "ssl.keystore.password",
                             "sasl.oauthbearer.client.secret", "ssl.key.pem"})
        BOOST_TEST(kt::is_secret_property(name), name);
    BOOST_TEST(!kt::is_secret_property("sasl.username"));
}

BOOST_AUTO_TEST_CASE(an_unknown_property_is_named) {
    try {
        kt::detail::make_conf({{"bootstrap.servers", "x"}, {"no.such.property", "1"}});
        BOOST_FAIL("expected config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == "no.such.property");
        BOOST_TEST(std::string(e.what()).find("no.such.property") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(an_invalid_value_is_named_and_a_secret_value_never_echoed) {
    try {
        kt::detail::make_conf({{"session.timeout.ms", "soon"}});
        BOOST_FAIL("expected config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == "session.timeout.ms");
        BOOST_TEST(std::string(e.what()).find("session.timeout.ms") != std::string::npos);
    }
    // librdkafka refuses a string for its "ssl_key" (set through an API, not as text): the
    // error names the property and never echoes the value.
    const std::string secret = "hunter2-in-ssl-key";
    try {
        kt::detail::make_conf({{"bootstrap.servers", "x"}, {"ssl_key", secret}});
        BOOST_FAIL("expected config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == "ssl_key");
        BOOST_TEST(std::string(e.what()).find(secret) == std::string::npos, e.what());
    }
}

namespace {
/// The property check_consumer_properties refuses `config` for; empty when it accepts it.
std::string refused_property(const consumer_config& config) {
    try {
        kt::check_consumer_properties(config);
        return {};
    } catch (const kt::config_error& e) {
        return e.property();
    }
}
}  // namespace

BOOST_AUTO_TEST_CASE(consumer_properties_are_checked_without_brokers_or_a_group) {
    BOOST_TEST(refused_property({{"session.timeout.ms", "6000"}}) == "");
    BOOST_TEST(refused_property({}) == "");  // bootstrap.servers and group.id come later
    BOOST_TEST(refused_property({{"no.such.property", "1"}}) == "no.such.property");
    BOOST_TEST(refused_property({{"session.timeout.ms", "soon"}}) == "session.timeout.ms");
    BOOST_TEST(refused_property({{"enable.auto.commit", "true"}}) == "enable.auto.commit");
    BOOST_TEST(refused_property({{"group.protocol", "consumer"}, {"session.timeout.ms", "6000"}}) ==
               "session.timeout.ms");
    BOOST_TEST(refused_property({{"group.protocol", "classic"}, {"session.timeout.ms", "6000"}}) ==
               "");
}

BOOST_AUTO_TEST_CASE(a_secret_value_is_replaced_in_every_later_log_line_and_repeats_are_limited) {
    std::vector<std::string> lines;
    kt::set_log_sink([&](kt::log_level, std::string_view line) { lines.emplace_back(line); });
    auto config = base();
    config.set("sasl.password", "pa55-in-a-log");
    (void)kt::detail::make_conf(config);
    kt::detail::log(kt::log_level::error, "broker said: bad credentials pa55-in-a-log for svc");
    for (int i = 0; i < 3; ++i)
        kt::detail::log_line(kt::log_level::error, "connect failed", kt::detail::repeats::limited);
    kt::set_log_sink({});
    BOOST_TEST_REQUIRE(lines.size() == 2u);  // the limited line once, its repeats held back
    BOOST_TEST(lines[0] == "broker said: bad credentials *** for svc");
    BOOST_TEST(lines[1] == "connect failed");
}
