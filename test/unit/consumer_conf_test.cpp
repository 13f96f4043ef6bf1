// Unit tests of the effective consumer config: what kafka-triggers sets and what it refuses,
// under both group protocols.
#include <boost/test/unit_test.hpp>

#include <string>

#include <kt/errors.hpp>

#include "consumer/consumer_conf.hpp"

namespace {

kt::consumer_config base(std::string protocol = "") {
    kt::consumer_config c{{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "g"}};
    if (!protocol.empty()) c.set("group.protocol", protocol);
    return c;
}

std::string value_of(const kt::detail::conf_ptr& conf, const char* name) {
    char value[512];
    std::size_t size = sizeof value;
    BOOST_REQUIRE(rd_kafka_conf_get(conf.get(), name, value, &size) == RD_KAFKA_CONF_OK);
    return value;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(consumer_conf_suite)

BOOST_AUTO_TEST_CASE(the_classic_protocol_gets_cooperative_assignment_and_manual_offsets) {
    const auto conf = kt::detail::consumer_conf(base(), {});
    BOOST_TEST(value_of(conf, "partition.assignment.strategy") == "cooperative-sticky");
    BOOST_TEST(value_of(conf, "enable.auto.commit") == "false");
    BOOST_TEST(value_of(conf, "enable.auto.offset.store") == "false");
    const auto reset = value_of(conf, "auto.offset.reset");
    BOOST_TEST((reset == "earliest" || reset == "smallest"));  // librdkafka reports its alias
}

BOOST_AUTO_TEST_CASE(the_consumer_protocol_gets_no_assignment_strategy) {
    const auto conf = kt::detail::consumer_conf(base("consumer"), {});
    BOOST_TEST(value_of(conf, "partition.assignment.strategy") != "cooperative-sticky");
    BOOST_TEST(value_of(conf, "group.protocol") == "consumer");
    BOOST_TEST(value_of(conf, "enable.auto.commit") == "false");
}

BOOST_AUTO_TEST_CASE(the_consumer_protocol_refuses_classic_only_properties_naming_them) {
    for (const char* name : {"partition.assignment.strategy", "session.timeout.ms",
                             "heartbeat.interval.ms", "group.protocol.type"}) {
        auto config = base("CONSUMER");  // librdkafka takes the value in any case
        config.set(name, name == std::string("partition.assignment.strategy") ? "range" : "6000");
        try {
            kt::detail::consumer_conf(config, {});
            BOOST_ERROR(name << " was accepted");
        } catch (const kt::config_error& e) {
            BOOST_TEST(e.property() == name);
            BOOST_TEST(std::string(e.what()).find("group.protocol=consumer") != std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(the_classic_protocol_keeps_the_users_session_and_strategy) {
    auto config = base("classic");
    config.set("session.timeout.ms", "6000");
    config.set("partition.assignment.strategy", "range");
    const auto conf = kt::detail::consumer_conf(config, {});
    BOOST_TEST(value_of(conf, "session.timeout.ms") == "6000");
    BOOST_TEST(value_of(conf, "partition.assignment.strategy") == "range");
}

BOOST_AUTO_TEST_SUITE_END()
