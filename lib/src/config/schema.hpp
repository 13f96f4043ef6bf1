// The configuration file's schema: the keys each object allows, property keys and enum names.
#pragma once

#include <string_view>

#include <kt/config.hpp>
#include <kt/options.hpp>

#include "config/json_reader.hpp"
#include "config/properties.hpp"

namespace kt::detail::config {

// ---------------------------------------------------------------- enums

inline constexpr choice<sharing> sharing_choices[] = {
    {"per_group", sharing::per_group}, {"per_topic", sharing::per_topic}, {"off", sharing::off}};
inline constexpr choice<kt::ordering> ordering_choices[] = {{"partition", kt::ordering::partition},
                                                            {"key", kt::ordering::key},
                                                            {"none", kt::ordering::none}};
inline constexpr choice<delivery_guarantee> delivery_choices[] = {
    {"at_least_once", delivery_guarantee::at_least_once},
    {"at_most_once", delivery_guarantee::at_most_once},
    {"exactly_once", delivery_guarantee::exactly_once}};

// ---------------------------------------------------------------- keys for librdkafka properties

inline constexpr property_key common_property_keys[] = {{"bootstrap_servers", "bootstrap.servers"},
                                                        {"client_id", "client.id"}};
inline constexpr property_key client_id_key[] = {{"client_id", "client.id"}};
inline constexpr property_key security_property_keys[] = {
    {"protocol", "security.protocol"},
    {"sasl_mechanism", "sasl.mechanism"},
    {"sasl_username", "sasl.username"},
    {"sasl_password", "sasl.password"},
    {"ssl_ca_location", "ssl.ca.location"},
    {"ssl_certificate_location", "ssl.certificate.location"},
    {"ssl_key_location", "ssl.key.location"},
    {"ssl_key_password", "ssl.key.password"},
};

// ---------------------------------------------------------------- the keys of each object

inline constexpr std::string_view root_keys[] = {"common", "consumers", "producers", "triggers"};
inline constexpr std::string_view common_keys[] = {"bootstrap_servers",
                                                   "client_id",
                                                   "security",
                                                   "sharing",
                                                   "commit_interval_ms",
                                                   "commit_after",
                                                   "completion_map",
                                                   "drain_timeout_ms",
                                                   "revoke_drain_timeout_ms",
                                                   "statistics_interval_ms",
                                                   "outage_recreate_after_ms",
                                                   "health",
                                                   "channel_capacity",
                                                   "properties"};
inline constexpr std::string_view health_keys[] = {"stuck_after_ms", "poll_stall_after_ms",
                                                   "max_lag", "scale_up_lag"};
inline constexpr std::string_view security_keys[] = {
    "protocol",        "sasl_mechanism",           "sasl_username",    "sasl_password",
    "ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "ssl_key_password"};
inline constexpr std::string_view consumer_keys[] = {
    "name", "group_id", "client_id", "topics", "delivery", "channel_capacity", "properties"};
inline constexpr std::string_view producer_keys[] = {"name",     "client_id",   "topics",
                                                     "delivery", "idempotence", "properties"};
inline constexpr std::string_view trigger_keys[] = {"name",
                                                    "consumer",
                                                    "topic",
                                                    "handler",
                                                    "ordering",
                                                    "ordering_key",
                                                    "max_in_flight",
                                                    "max_backlog",
                                                    "retry",
                                                    "retry_topics",
                                                    "dead_letter",
                                                    "delivery",
                                                    "batch",
                                                    "transactional_id",
                                                    "transaction_max_messages",
                                                    "transaction_interval_ms"};
inline constexpr std::string_view retry_keys[] = {"max_attempts", "initial_backoff_ms",
                                                  "max_backoff_ms", "multiplier", "jitter"};
inline constexpr std::string_view retry_topics_keys[] = {"delays", "topic_prefix"};
inline constexpr std::string_view dead_letter_keys[] = {"enabled", "topic", "producer"};
inline constexpr std::string_view batch_keys[] = {"max_messages", "max_wait_ms"};
inline constexpr std::string_view transaction_keys[] = {
    "transactional_id", "transaction_max_messages", "transaction_interval_ms"};

}  // namespace kt::detail::config
