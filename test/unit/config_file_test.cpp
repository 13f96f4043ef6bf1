// Unit tests of configuration files: parsing, errors naming JSON paths, ${ENV} secrets,
// redacted dumps and binding handlers by name.
#define BOOST_TEST_MODULE config_file
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <string>

#include <kt/config_file.hpp>
#include <kt/errors.hpp>

namespace asio = boost::asio;

namespace kt {
std::ostream& operator<<(std::ostream& os, const consumer_config& config) {
    return os << redacted(config);
}
std::ostream& operator<<(std::ostream& os, ordering o) {
    return os << static_cast<int>(o);
}
std::ostream& operator<<(std::ostream& os, delivery_guarantee d) {
    return os << static_cast<int>(d);
}
}  // namespace kt

namespace {

constexpr const char* issue_example = R"({
  "common": {"bootstrap_servers": "localhost:9092", "client_id": "orders-svc"},
  "consumers": [{"name": "orders", "group_id": "order-processing", "delivery": "at_least_once",
                 "channel_capacity": 1000}],
  "triggers": [{"name": "billing", "consumer": "orders", "topic": "orders", "handler": "bill",
                "ordering": "key", "max_in_flight": 64}]
})";

/// An environment of its own, so tests neither read nor change the process's.
kt::environment fake_env(std::map<std::string, std::string> variables) {
    return [variables](const std::string& name) -> std::optional<std::string> {
        auto it = variables.find(name);
        if (it == variables.end()) return std::nullopt;
        return it->second;
    };
}

const kt::environment no_env = fake_env({});

/// Parses `text` expecting a config_error at `path` whose message contains `problem`.
kt::config_error error_of(const std::string& text, const kt::environment& env = no_env) {
    try {
        (void)kt::parse_config(text, env);
    } catch (const kt::config_error& e) {
        return e;
    }
    BOOST_FAIL("expected kt::config_error for " << text);
    throw std::logic_error("unreachable");
}

void check_error(const std::string& text, const std::string& path, const std::string& problem,
                 const kt::environment& env = no_env) {
    const auto e = error_of(text, env);
    const std::string what = e.what();
    BOOST_TEST(e.property() == path);
    BOOST_TEST(what.find("config: " + path + ": ") == 0, what);
    BOOST_TEST(what.find(problem) != std::string::npos, what << "\n  lacks: " << problem);
}

/// One consumer "orders" on topic "orders", plus `trigger` (JSON members) as $.triggers[0].
std::string with_trigger(const std::string& trigger_members, const std::string& extra = "") {
    return R"({"common": {"bootstrap_servers": "localhost:9092"},
               "consumers": [{"name": "orders", "group_id": "g"}],
               "triggers": [{"name": "t", "consumer": "orders", "topic": "orders",
                             "handler": "h")" +
           (trigger_members.empty() ? "" : ", " + trigger_members) + "}]" + extra + "}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_issue_example_parses_into_typed_options) {
    const auto config = kt::parse_config(issue_example, no_env);
    BOOST_TEST_REQUIRE(config.consumers.size() == 1u);
    const auto& consumer = config.consumers[0].config;
    BOOST_TEST(consumer.get("bootstrap.servers") == "localhost:9092");
    BOOST_TEST(consumer.get("client.id") == "orders-svc");
    BOOST_TEST(consumer.get("group.id") == "order-processing");
    BOOST_TEST(config.host.channel_capacity == 1000u);
    BOOST_TEST_REQUIRE(config.triggers.size() == 1u);
    const auto& t = config.triggers[0];
    BOOST_TEST(t.options.name == "billing");
    BOOST_TEST(t.options.topic == "orders");
    BOOST_TEST(t.handler == "bill");
    BOOST_TEST(t.consumer == "orders");
    BOOST_TEST(t.options.ordering == kt::ordering::key);
    BOOST_TEST(t.options.max_in_flight == 64u);
    BOOST_TEST(t.options.consumer == consumer);
    BOOST_TEST(!t.batch.has_value());
    BOOST_TEST(t.options.dead_letter.enabled);
    BOOST_TEST(t.options.dead_letter.topic == "orders.dlq");
    BOOST_TEST(t.options.delivery == kt::delivery_guarantee::at_least_once);
}

BOOST_AUTO_TEST_CASE(every_trigger_option_is_read) {
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "b:9092", "sharing": "per_topic",
                       "commit_interval_ms": 250, "drain_timeout_ms": 0,
                       "revoke_drain_timeout_ms": 3000, "statistics_interval_ms": 0,
                       "outage_recreate_after_ms": 9000,
                       "health": {"stuck_after_ms": 5000, "poll_stall_after_ms": 2500,
                                  "max_lag": 7, "scale_up_lag": 3}},
            "producers": [{"name": "dlq", "topics": ["orders.failed"]}],
            "consumers": [{"name": "c", "group_id": "g", "topics": ["orders"],
                           "delivery": "at_most_once"}],
            // comments and trailing commas are allowed
            "triggers": [{"name": "t", "consumer": "c", "topic": "orders", "handler": "h",
                          "ordering": "none", "max_backlog": 50,
                          "retry": {"max_attempts": 4, "initial_backoff_ms": 10,
                                    "max_backoff_ms": 80, "multiplier": 3, "jitter": 0},
                          "dead_letter": {"topic": "orders.failed", "producer": "dlq"},
                          "batch": {"max_messages": 7, "max_wait_ms": 20},},]})",
        no_env);
    BOOST_TEST((config.host.sharing == kt::sharing::per_topic));
    BOOST_TEST(config.host.commit_interval.count() == 250);
    BOOST_TEST(config.host.drain_timeout.count() == 0);
    BOOST_TEST(config.host.revoke_drain_timeout.count() == 3000);
    BOOST_TEST(config.host.statistics_interval.count() == 0);
    BOOST_TEST(config.host.outage_recreate_after.count() == 9000);
    BOOST_TEST(config.host.health.stuck_after.count() == 5000);
    BOOST_TEST(config.host.health.poll_stall_after.count() == 2500);
    BOOST_TEST(config.host.health.max_lag == 7);
    BOOST_TEST(config.host.health.scale_up_lag == 3);
    const auto& t = config.triggers.at(0);
    BOOST_TEST(t.options.ordering == kt::ordering::none);
    BOOST_TEST(t.options.max_backlog == 50u);
    BOOST_TEST(t.options.delivery == kt::delivery_guarantee::at_most_once);
    BOOST_TEST(t.options.retry.max_attempts == 4u);
    BOOST_TEST(t.options.retry.initial_backoff.count() == 10);
    BOOST_TEST(t.options.retry.max_backoff.count() == 80);
    BOOST_TEST(t.options.retry.multiplier == 3.0);
    BOOST_TEST(t.options.retry.jitter == 0.0);
    BOOST_TEST(t.options.dead_letter.enabled);
    BOOST_TEST(t.options.dead_letter.topic == "orders.failed");
    BOOST_TEST(t.dead_letter_producer == "dlq");
    BOOST_TEST(t.options.dead_letter.producer == config.find_producer("dlq")->config);
    BOOST_TEST_REQUIRE(t.batch.has_value());
    BOOST_TEST(t.batch->max_messages == 7u);
    BOOST_TEST(t.batch->max_wait.count() == 20);
}

BOOST_AUTO_TEST_CASE(librdkafka_properties_pass_through_and_the_specific_section_wins) {
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "b:9092",
                       "security": {"protocol": "sasl_ssl", "sasl_mechanism": "PLAIN",
                                    "sasl_username": "svc"},
                       "properties": {"fetch.wait.max.ms": 50, "socket.keepalive.enable": true,
                                      "statistics.interval.ms": "0"}},
            "consumers": [{"name": "c", "group_id": "g", "client_id": "consumer-1",
                           "properties": {"fetch.wait.max.ms": "20",
                                          "session.timeout.ms": "6000"}}],
            "producers": [{"name": "p", "idempotence": false,
                           "properties": {"linger.ms": "5"}}]})",
        no_env);
    const auto& consumer = config.find_consumer("c")->config;
    BOOST_TEST(consumer.get("security.protocol") == "sasl_ssl");
    BOOST_TEST(consumer.get("sasl.mechanism") == "PLAIN");
    BOOST_TEST(consumer.get("sasl.username") == "svc");
    BOOST_TEST(consumer.get("socket.keepalive.enable") == "true");
    BOOST_TEST(consumer.get("statistics.interval.ms") == "0");
    BOOST_TEST(consumer.get("fetch.wait.max.ms") == "20");
    BOOST_TEST(consumer.get("session.timeout.ms") == "6000");
    BOOST_TEST(consumer.get("client.id") == "consumer-1");
    const auto& producer = config.find_producer("p")->config;
    BOOST_TEST(producer.get("bootstrap.servers") == "b:9092");
    BOOST_TEST(producer.get("security.protocol") == "sasl_ssl");
    BOOST_TEST(!producer.contains("fetch.wait.max.ms"));  // consumer-only
    BOOST_TEST(producer.get("enable.idempotence") == "false");
    BOOST_TEST(producer.get("linger.ms") == "5");
}

BOOST_AUTO_TEST_CASE(producer_delivery_sets_or_refuses_idempotence) {
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "b"},
            "producers": [{"name": "once", "delivery": "at_most_once"},
                          {"name": "exact", "delivery": "exactly_once"}]})",
        no_env);
    BOOST_TEST(config.find_producer("once")->config.get("enable.idempotence") == "false");
    BOOST_TEST(config.find_producer("once")->config.get("message.send.max.retries") == "0");
    BOOST_TEST(config.find_producer("exact")->config.get("enable.idempotence") == "true");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "producers": [{"name": "p", "delivery": "at_most_once", "idempotence": true}]})",
                "$.producers[0].idempotence", "conflicts with delivery \"at_most_once\"");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "producers": [{"name": "p", "delivery": "exactly_once",
                                   "properties": {"enable.idempotence": "false"}}]})",
                R"($.producers[0].properties["enable.idempotence"])",
                "conflicts with delivery \"exactly_once\"");
}

BOOST_AUTO_TEST_CASE(an_ordering_key_header_orders_by_that_header) {
    const auto config = kt::parse_config(
        with_trigger(R"("ordering": "key", "ordering_key": "header:tenant")"), no_env);
    const auto& t = config.triggers.at(0);
    BOOST_TEST_REQUIRE(static_cast<bool>(t.options.key_of));
    BOOST_TEST(t.ordering_key == "header:tenant");
    BOOST_TEST(kt::dump_redacted(config).find(R"("ordering_key":"header:tenant")") !=
               std::string::npos);
    // "key" is the record key: no extractor.
    BOOST_TEST(
        !kt::parse_config(with_trigger(R"("ordering": "key", "ordering_key": "key")"), no_env)
             .triggers.at(0)
             .options.key_of);
    check_error(
        with_trigger(R"("ordering": "key", "ordering_key": "tenant")"),
        "$.triggers[0].ordering_key",
        R"("tenant" is not an ordering key; use "key" (the record key) or "header:<name>")");
    check_error(with_trigger(R"("ordering": "key", "ordering_key": "header:")"),
                "$.triggers[0].ordering_key", "is not an ordering key");
    check_error(with_trigger(R"("ordering_key": "header:tenant")"), "$.triggers[0].ordering_key",
                R"(applies only with "ordering": "key")");
}

BOOST_AUTO_TEST_CASE(retry_topics_take_delays_and_a_prefix) {
    const auto config =
        kt::parse_config(with_trigger(R"("retry_topics": {"delays": ["1s", "250ms", "2m"],
                                         "topic_prefix": "orders.again."})"),
                         no_env);
    const auto& o = config.triggers.at(0).options;
    BOOST_TEST(
        (o.retry_topics.delays ==
         std::vector<std::chrono::milliseconds>{
             std::chrono::seconds(1), std::chrono::milliseconds(250), std::chrono::minutes(2)}));
    BOOST_TEST((kt::retry_topic_names(o) ==
                std::vector<std::string>{"orders.again.1", "orders.again.2", "orders.again.3"}));
    BOOST_TEST(kt::dump_redacted(config).find(R"("delays":["1000ms","250ms","120000ms"])") !=
               std::string::npos);
    check_error(with_trigger(R"("retry_topics": {"delays": ["1s", "10x"]})"),
                "$.triggers[0].retry_topics.delays[1]", "\"10x\" is not a retry tier delay");
    check_error(with_trigger(R"("retry_topics": {"delays": []})"),
                "$.triggers[0].retry_topics.delays", "expected at least one delay");
    check_error(with_trigger(R"("retry_topics": {"delays": ["1s"], "tiers": 3})"),
                "$.triggers[0].retry_topics.tiers", "unknown key");
}

BOOST_AUTO_TEST_CASE(value_errors_name_the_json_path) {
    check_error(with_trigger(R"("max_in_flight": -3)"), "$.triggers[0].max_in_flight",
                "expected a positive integer, got -3");
    check_error(with_trigger(R"("max_backlog": 1.5)"), "$.triggers[0].max_backlog",
                "expected a positive integer, got 1.5");
    check_error(with_trigger(R"("ordering": "keys")"), "$.triggers[0].ordering",
                "expected one of partition, key, none, got \"keys\"");
    check_error(with_trigger(R"("retry": {"jitter": 2})"), "$.triggers[0].retry.jitter",
                "expected a number from 0 to 1, got 2");
    check_error(with_trigger(R"("retry": {"initial_backoff_ms": 500, "max_backoff_ms": 100})"),
                "$.triggers[0].retry.max_backoff_ms",
                "max_backoff (100 ms) is below initial_backoff (500 ms)");
    // Only the initial backoff is written: it is the one named (above the default maximum).
    check_error(with_trigger(R"("retry": {"initial_backoff_ms": 60000})"),
                "$.triggers[0].retry.initial_backoff_ms", "is below initial_backoff (60000 ms)");
    check_error(with_trigger(R"("dead_letter": {"enabled": "no"})"),
                "$.triggers[0].dead_letter.enabled", "expected true or false");
    check_error(with_trigger(R"("batch": {"max_messages": 0})"), "$.triggers[0].batch.max_messages",
                "expected a positive integer, got 0");
    check_error(with_trigger("", " garbage"), "$", "invalid JSON");
    check_error(R"([1, 2])", "$", "expected an object, got an array");
    check_error(R"({"triggers": {}})", "$.triggers", "expected an array, got an object");
}

BOOST_AUTO_TEST_CASE(missing_empty_unknown_and_duplicate_entries_name_the_json_path) {
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g"}],
                    "triggers": [{"name": "t", "consumer": "c", "topic": "", "handler": "h"}]})",
                "$.triggers[0].topic", "expected a non-empty string");
    check_error(R"({"common": {"bootstrap_servers": "b"}, "consumers": [{"name": "c"}]})",
                "$.consumers[0].group_id", "missing required key");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g"}],
                    "triggers": [{"name": "t", "consumer": "c", "topic": "x"}]})",
                "$.triggers[0].handler", "missing required key");
    check_error(with_trigger(R"("max_inflight": 3)"), "$.triggers[0].max_inflight",
                "unknown key (did you mean max_in_flight?)");
    check_error(R"({"common": {"zzz": 1}})", "$.common.zzz",
                "unknown key (known: bootstrap_servers, client_id, security");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "orders", "group_id": "g"}],
                    "triggers": [{"name": "t", "consumer": "ordrs", "topic": "x", "handler": "h"}]})",
                "$.triggers[0].consumer", "unknown consumer \"ordrs\" (known: orders)");
    check_error(with_trigger(R"("dead_letter": {"producer": "nope"})"),
                "$.triggers[0].dead_letter.producer", "unknown producer \"nope\" (known: none)");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g"}],
                    "triggers": [{"name": "billing", "consumer": "c", "topic": "x", "handler": "h"},
                                 {"name": "billing", "consumer": "c", "topic": "y", "handler": "h"}]})",
                "$.triggers[1].name",
                "duplicate trigger name \"billing\" (also $.triggers[0].name)");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g"}, {"name": "c", "group_id": "h"}]})",
                "$.consumers[1].name", "duplicate consumer name \"c\"");
    check_error(R"({"consumers": [{"name": "c", "group_id": "g"}]})", "$.consumers[0]",
                "consumer \"c\" has no bootstrap servers");
}

BOOST_AUTO_TEST_CASE(properties_kafka_triggers_manages_are_refused_at_load) {
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g",
                                   "properties": {"enable.auto.commit": "true"}}]})",
                R"($.consumers[0].properties["enable.auto.commit"])", "managed by kafka-triggers");
    check_error(R"({"common": {"bootstrap_servers": "b",
                               "properties": {"enable.auto.offset.store": true}}})",
                R"($.common.properties["enable.auto.offset.store"])", "managed by kafka-triggers");
    BOOST_CHECK_NO_THROW(kt::parse_config(
        R"({"common": {"bootstrap_servers": "b", "properties": {"enable.auto.commit": false}}})",
        no_env));
}

BOOST_AUTO_TEST_CASE(a_key_written_twice_in_one_object_is_refused_with_its_path) {
    // Boost.JSON keeps the last value; the first would be lost without a word.
    check_error(with_trigger(R"("max_in_flight": 8, "max_in_flight": 64)"),
                "$.triggers[0].max_in_flight", "written twice in one object");
    check_error(R"({"common": {"bootstrap_servers": "b"}, "common": {"client_id": "x"}})",
                "$.common", "written twice");
    check_error(R"({"common": {"bootstrap_servers": "b",
                               "properties": {"fetch.wait.max.ms": 10, "x": [1, {}, {"a": 1}],
                                              "fetch.wait.max.ms": 20}}})",
                R"($.common.properties["fetch.wait.max.ms"])", "written twice");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "a", "group_id": "g"}, [0, {"x": 1, "x": 2}]]})",
                "$.consumers[1][1].x", "written twice");
    // The same key in sibling objects is fine.
    BOOST_CHECK_NO_THROW(kt::parse_config(
        R"({"common": {"bootstrap_servers": "b"},
            "consumers": [{"name": "a", "group_id": "g"}, {"name": "b", "group_id": "g"}]})",
        no_env));
}

BOOST_AUTO_TEST_CASE(rule_violations_name_the_json_path) {
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g", "topics": ["a", "b"]}],
                    "triggers": [{"name": "t", "consumer": "c", "topic": "x", "handler": "h"}]})",
                "$.triggers[0].topic", "\"x\" is not among consumer \"c\"'s topics (a, b)");
    check_error(with_trigger(R"("delivery": "at_most_once")"), "$.triggers[0].delivery",
                "\"at_most_once\" differs from consumer \"orders\"'s delivery \"at_least_once\"");
    check_error(with_trigger(R"("dead_letter": {"topic": "orders"})"),
                "$.triggers[0].dead_letter.topic", "cannot be the trigger's own topic");
    check_error(with_trigger(R"("transactional_id": "x")"), "$.triggers[0].transactional_id",
                "only used with delivery \"exactly_once\"");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g", "delivery": "exactly_once"}],
                    "triggers": [{"name": "t", "consumer": "c", "topic": "x", "handler": "h",
                                  "batch": {}}]})",
                "$.triggers[0].batch", "batch triggers support at_least_once and at_most_once");
    check_error(R"({"common": {"bootstrap_servers": "b", "channel_capacity": 100},
                    "consumers": [{"name": "c", "group_id": "g", "channel_capacity": 200}]})",
                "$.consumers[0].channel_capacity",
                "200 differs from 100 at $.common.channel_capacity");
    check_error(R"({"common": {"bootstrap_servers": "b",
                               "properties": {"bootstrap.servers": "c"}}})",
                R"($.common.properties["bootstrap.servers"])",
                "property 'bootstrap.servers' is set twice (also at $.common.bootstrap_servers)");
}

BOOST_AUTO_TEST_CASE(librdkafka_refusals_name_the_json_path_of_the_property) {
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "consumers": [{"name": "c", "group_id": "g",
                                   "properties": {"fetch.wait.max.ms": "-5"}}]})",
                R"($.consumers[0].properties["fetch.wait.max.ms"])",
                "invalid value for property 'fetch.wait.max.ms'");
    check_error(R"({"common": {"bootstrap_servers": "b", "properties": {"no.such.property": 1}}})",
                R"($.common.properties["no.such.property"])",
                "unknown librdkafka property 'no.such.property'");
    check_error(R"({"common": {"bootstrap_servers": "b", "security": {"protocol": "bogus"}}})",
                "$.common.security.protocol", "invalid value for property 'security.protocol'");
    check_error(R"({"common": {"bootstrap_servers": "b"},
                    "producers": [{"name": "p", "properties": {"linger.ms": [1]}}]})",
                R"($.producers[0].properties["linger.ms"])",
                "expected a string, integer or boolean, got an array");
}

BOOST_AUTO_TEST_CASE(json_syntax_errors_give_line_and_column) {
    check_error("{\n  \"common\": {\n    \"client_id\": x\n  }\n}", "$",
                "invalid JSON at line 3, column 18 (syntax error)");
    check_error("{\"common\": {}", "$", "invalid JSON at line 1, column 14 (incomplete JSON)");
}

BOOST_AUTO_TEST_CASE(environment_variables_are_substituted_in_strings) {
    const auto env =
        fake_env({{"KAFKA_BROKERS", "k1:9092"}, {"KAFKA_PASSWORD", "s3cr3t-from-env"}});
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "${KAFKA_BROKERS},k2:9092",
                       "security": {"sasl_password": "${KAFKA_PASSWORD}"}},
            "consumers": [{"name": "c", "group_id": "price-$${not-a-variable}"}]})",
        env);
    const auto& consumer = config.consumers.at(0).config;
    BOOST_TEST(consumer.get("bootstrap.servers") == "k1:9092,k2:9092");
    BOOST_TEST(consumer.get("sasl.password") == "s3cr3t-from-env");
    BOOST_TEST(consumer.get("group.id") == "price-${not-a-variable}");
}

BOOST_AUTO_TEST_CASE(the_process_environment_is_the_default) {
    ::setenv("KT_CONFIG_FILE_TEST_GROUP", "from-process-env", 1);
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "b"},
            "consumers": [{"name": "c", "group_id": "${KT_CONFIG_FILE_TEST_GROUP}"}]})");
    BOOST_TEST(config.consumers.at(0).config.get("group.id") == "from-process-env");
    ::unsetenv("KT_CONFIG_FILE_TEST_GROUP");
}

BOOST_AUTO_TEST_CASE(an_unset_or_malformed_variable_is_named_with_its_path) {
    check_error(R"({"common": {"bootstrap_servers": "b",
                               "security": {"sasl_password": "${KAFKA_PASSWORD}"}}})",
                "$.common.security.sasl_password",
                "environment variable KAFKA_PASSWORD is not set");
    check_error(R"({"common": {"bootstrap_servers": "${KAFKA BROKERS}"}})",
                "$.common.bootstrap_servers", "malformed ${...}");
    check_error(R"({"common": {"bootstrap_servers": "${KAFKA_BROKERS"}})",
                "$.common.bootstrap_servers", "malformed ${...}");
}

BOOST_AUTO_TEST_CASE(dumps_redact_every_secret_wherever_it_came_from) {
    const auto env = fake_env({{"KAFKA_PASSWORD", "s3cr3t-from-env"}});
    const auto config = kt::parse_config(
        R"({"common": {"bootstrap_servers": "b:9092",
                       "security": {"sasl_username": "svc", "sasl_password": "${KAFKA_PASSWORD}",
                                    "ssl_key_password": "written-in-file"}},
            "consumers": [{"name": "c", "group_id": "g",
                           "properties": {"sasl.oauthbearer.config": "oauth-secret"}}],
            "producers": [{"name": "p", "properties": {"ssl.keystore.password": "keystore-pw"}}],
            "triggers": [{"name": "t", "consumer": "c", "topic": "x", "handler": "h"}]})",
        env);
    BOOST_TEST(config.consumers.at(0).config.get("sasl.password") == "s3cr3t-from-env");
    const auto dump = kt::dump_redacted(config);
    for (const char* secret : {"s3cr3t-from-env", "written-in-file", "oauth-secret", "keystore-pw"})
        BOOST_TEST(dump.find(secret) == std::string::npos, secret << " in " << dump);
    BOOST_TEST(dump.find(R"("sasl.password":"***")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("ssl.key.password":"***")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("sasl.oauthbearer.config":"***")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("ssl.keystore.password":"***")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("sasl.username":"svc")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("handler":"h")") != std::string::npos, dump);
    BOOST_TEST(dump.find(R"("group.id":"g")") != std::string::npos, dump);
}

BOOST_AUTO_TEST_CASE(secrets_never_appear_in_error_messages) {
    const std::string secret = "hunter2-secret-value";
    const auto env = fake_env({{"KAFKA_PASSWORD", secret}});
    const std::string files[] = {
        // librdkafka refuses the value of a secret property
        R"({"common": {"bootstrap_servers": "b", "properties": {"ssl_key": "hunter2-secret-value"}}})",
        // a secret of the wrong type
        R"({"common": {"bootstrap_servers": "b",
                       "security": {"sasl_password": {"v": "hunter2-secret-value"}}}})",
        R"({"common": {"bootstrap_servers": "b", "security": "hunter2-secret-value"}})",
        // a secret from the environment, set twice
        R"({"common": {"bootstrap_servers": "b", "security": {"sasl_password": "${KAFKA_PASSWORD}"},
                       "properties": {"sasl.password": "${KAFKA_PASSWORD}"}}})",
        // a JSON syntax error right after a secret
        R"({"common": {"bootstrap_servers": "b", "security": {"sasl_password": "hunter2-secret-value" x}}})",
        // an unknown property whose value is a secret
        R"({"common": {"bootstrap_servers": "b", "properties": {"my.password": "${KAFKA_PASSWORD}"}}})",
    };
    const std::string paths[] = {R"($.common.properties["ssl_key"])",
                                 "$.common.security.sasl_password",
                                 "$.common.security",
                                 R"($.common.properties["sasl.password"])",
                                 "$",
                                 R"($.common.properties["my.password"])"};
    for (std::size_t i = 0; i < std::size(files); ++i) {
        const auto e = error_of(files[i], env);
        const std::string what = e.what();
        BOOST_TEST(e.property() == paths[i], what);
        BOOST_TEST(what.find("hunter2") == std::string::npos, what);
    }
}

BOOST_AUTO_TEST_CASE(load_config_reads_a_file_and_names_one_it_cannot_read) {
    const auto file = std::filesystem::temp_directory_path() / "kt_config_file_test.json";
    std::ofstream(file) << issue_example;
    BOOST_TEST(kt::load_config(file, no_env).triggers.at(0).options.name == "billing");
    std::filesystem::remove(file);
    try {
        (void)kt::load_config(file, no_env);
        BOOST_FAIL("expected config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(std::string(e.what()).find("cannot read " + file.string()) != std::string::npos,
                   e.what());
    }
}

namespace {

asio::awaitable<void> ignore(const kt::message&) {
    co_return;
}
asio::awaitable<void> ignore_batch(std::span<const kt::message>) {
    co_return;
}
asio::awaitable<void> copy(const kt::message&, kt::producer&) {
    co_return;
}

std::string two_triggers(const std::string& second_handler, const std::string& second_extra = "") {
    return R"({"common": {"bootstrap_servers": "localhost:9092"},
               "consumers": [{"name": "orders", "group_id": "g"}],
               "triggers": [{"name": "billing", "consumer": "orders", "topic": "orders",
                             "handler": "bill"},
                            {"name": "audit", "consumer": "orders", "topic": "orders",
                             "handler": ")" +
           second_handler + "\"" + second_extra + "}]}";
}

/// add_triggers' config_error, or a failed test.
kt::config_error add_triggers_error(const std::string& text, const kt::handler_registry& handlers,
                                    kt::trigger_host& host) {
    try {
        kt::add_triggers(host, kt::parse_config(text, no_env), handlers);
    } catch (const kt::config_error& e) {
        return e;
    }
    BOOST_FAIL("expected kt::config_error from add_triggers");
    throw std::logic_error("unreachable");
}

}  // namespace

BOOST_AUTO_TEST_CASE(add_triggers_binds_handlers_by_name) {
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    std::vector<std::string> made_for;
    kt::handler_registry handlers;
    handlers.add("bill", ignore).add_factory("audit-log", [&](const kt::configured_trigger& t) {
        made_for.push_back(t.options.name);
        return kt::bound_handler{kt::handler(ignore)};
    });
    kt::add_triggers(host, kt::parse_config(two_triggers("audit-log"), no_env), handlers);
    BOOST_TEST(host.stats().size() == 2u);
    BOOST_TEST(made_for == std::vector<std::string>{"audit"});
}

BOOST_AUTO_TEST_CASE(an_unknown_handler_is_named_before_any_trigger_is_added) {
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    kt::handler_registry handlers;
    handlers.add("bill", ignore).add_transform("copy", copy);
    const auto e = add_triggers_error(two_triggers("bil"), handlers, host);
    BOOST_TEST(e.property() == "$.triggers[1].handler");
    BOOST_TEST(std::string(e.what()) ==
               R"(config: $.triggers[1].handler: unknown handler "bil" (known: bill, copy))");
    BOOST_TEST(host.stats().empty());
}

BOOST_AUTO_TEST_CASE(check_handlers_validates_without_a_host) {
    kt::handler_registry handlers;
    handlers.add("bill", ignore).add("audit", ignore);
    BOOST_CHECK_NO_THROW(
        kt::check_handlers(kt::parse_config(two_triggers("audit"), no_env), handlers));
    try {
        kt::check_handlers(kt::parse_config(two_triggers("audi"), no_env), handlers);
        BOOST_FAIL("expected config_error");
    } catch (const kt::config_error& e) {
        BOOST_TEST(e.property() == "$.triggers[1].handler");
        BOOST_TEST(std::string(e.what()).find(R"(unknown handler "audi" (known: audit, bill))") !=
                   std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(a_handler_of_the_wrong_kind_is_named) {
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    kt::handler_registry handlers;
    handlers.add("bill", ignore).add_batch("many", ignore_batch);
    auto e = add_triggers_error(two_triggers("bill", R"(, "batch": {"max_messages": 5})"), handlers,
                                host);
    BOOST_TEST(e.property() == "$.triggers[1].batch");
    BOOST_TEST(std::string(e.what()).find("handler \"bill\" is not a batch handler") !=
               std::string::npos);
    e = add_triggers_error(R"({"common": {"bootstrap_servers": "localhost:9092"},
                               "consumers": [{"name": "c", "group_id": "g",
                                              "delivery": "exactly_once"}],
                               "triggers": [{"name": "t", "consumer": "c", "topic": "x",
                                             "handler": "bill"}]})",
                           handlers, host);
    BOOST_TEST(e.property() == "$.triggers[0].handler");
    BOOST_TEST(std::string(e.what()).find("needs a transform handler") != std::string::npos);
    BOOST_TEST(host.stats().empty());
}

BOOST_AUTO_TEST_CASE(a_trigger_the_host_refuses_is_named_by_its_path) {
    kt::runtime rt{{.shards = 1}};
    kt::trigger_host host{rt};
    kt::handler_registry handlers;
    handlers.add("h", ignore);
    // Only the host knows its triggers: the file cannot see that "t" is taken.
    host.add_trigger({.name = "t",
                      .topic = "x",
                      .consumer = kt::consumer_config{{"bootstrap.servers", "localhost:9092"},
                                                      {"group.id", "g"}}},
                     ignore);
    const auto e = add_triggers_error(
        R"({"common": {"bootstrap_servers": "localhost:9092"},
            "consumers": [{"name": "c", "group_id": "g"}],
            "triggers": [{"name": "t", "consumer": "c", "topic": "x", "handler": "h"}]})",
        handlers, host);
    BOOST_TEST(e.property() == "$.triggers[0]");
    BOOST_TEST(std::string(e.what()).find("config: $.triggers[0]: ") == 0, e.what());
    BOOST_TEST(std::string(e.what()).find("duplicate trigger name 't'") != std::string::npos,
               e.what());
}
