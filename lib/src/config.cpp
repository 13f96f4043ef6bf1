// Sharing keys (canonical config, secrets hashed) and validated librdkafka configs.
#include <algorithm>
#include <array>
#include <cctype>
#include <set>
#include <vector>

#include <openssl/evp.h>

#include <kt/producer.hpp>

#include "log.hpp"
#include "rdkafka_handles.hpp"

namespace kt {
namespace {

std::string sha256_hex(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
    return hex;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool is_bootstrap_property(std::string_view name) {
    return name == "bootstrap.servers" || name == "metadata.broker.list";
}

}  // namespace

bool is_secret_property(std::string_view name) noexcept {
    return name.find("password") != std::string_view::npos ||
           name.find("secret") != std::string_view::npos || name == "ssl.key.pem" ||
           name == "ssl_key" || name == "sasl.oauthbearer.config" ||
           name == "ssl.keystore.location.password";
}

std::string normalise_bootstrap(std::string_view servers) {
    std::set<std::string> hosts;
    while (!servers.empty()) {
        auto comma = servers.find(',');
        auto item = trim(servers.substr(0, comma));
        if (!item.empty()) {
            std::string host(item);
            std::transform(host.begin(), host.end(), host.begin(),
                           [](unsigned char c) { return std::tolower(c); });
            hosts.insert(std::move(host));
        }
        if (comma == std::string_view::npos) break;
        servers.remove_prefix(comma + 1);
    }
    std::string joined;
    for (const auto& host : hosts) {
        if (!joined.empty()) joined += ',';
        joined += host;
    }
    return joined;
}

sharing_key sharing_key::of(const consumer_config& config, sharing mode, std::string_view topic,
                            std::string_view trigger_name, delivery_guarantee delivery) {
    sharing_key key;
    // std::map iterates sorted, so equal configs give equal text whatever the insertion order.
    for (const auto& [name, value] : config.properties()) {
        std::string canonical_name = name == "metadata.broker.list" ? "bootstrap.servers" : name;
        std::string canonical_value = is_bootstrap_property(name) ? normalise_bootstrap(value)
                                      : is_secret_property(name)  ? "sha256:" + sha256_hex(value)
                                                                  : value;
        key.canonical_ += canonical_name + '=' + canonical_value + '\n';
    }
    switch (mode) {
        case sharing::per_group:
            break;
        case sharing::per_topic:
            key.canonical_ += fmt::format("#topic={}\n", topic);
            break;
        case sharing::off:
            key.canonical_ += fmt::format("#trigger={}\n", trigger_name);
            break;
    }
    // Commit timing differs per guarantee, and a transaction commits its trigger's offsets
    // itself: such consumers are never shared across guarantees, exactly_once never at all.
    switch (delivery) {
        case delivery_guarantee::at_least_once:
            break;
        case delivery_guarantee::at_most_once:
            key.canonical_ += "#delivery=at_most_once\n";
            break;
        case delivery_guarantee::exactly_once:
            if (mode != sharing::off)
                key.canonical_ +=
                    fmt::format("#delivery=exactly_once\n#trigger={}\n", trigger_name);
            break;
    }
    return key;
}

std::string redacted(const consumer_config& config) {
    std::string text;
    for (const auto& [name, value] : config.properties())
        text += fmt::format("{}={}\n", name, is_secret_property(name) ? "***" : value);
    return text;
}

producer_config producer_config_for(const consumer_config& consumer) {
    // Consumer-only properties of librdkafka (CONFIGURATION.md, "C"); a producer warns on them.
    static constexpr std::string_view consumer_only[] = {
        "group.id",
        "group.instance.id",
        "group.protocol.type",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
        "consume.callback.max.messages",
        "allow.auto.create.topics",
    };
    producer_config producer;
    for (const auto& [name, value] : consumer.properties())
        if (std::find(std::begin(consumer_only), std::end(consumer_only), name) ==
            std::end(consumer_only))
            producer.set(name, value);
    return producer;
}

namespace detail {
namespace {

void route_librdkafka_log(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
    // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
    const log_level ours = level <= 3   ? log_level::error
                           : level == 4 ? log_level::warning
                           : level <= 6 ? log_level::info
                                        : log_level::debug;
    if (!log_enabled(ours)) return;
    log_line(ours,
             fmt::format("librdkafka {} {}: {}", rk ? rd_kafka_name(rk) : "-", facility, text),
             repeats::limited);
}

}  // namespace

void check_managed_property(std::string_view name, std::string_view value) {
    if ((name == "enable.auto.commit" || name == "enable.auto.offset.store") && value != "false")
        throw config_error(std::string(name),
                           fmt::format("property '{}' is managed by kafka-triggers (offsets are "
                                       "committed when handlers complete); remove it",
                                       name));
}

conf_ptr make_conf(const consumer_config& config) {
    conf_ptr conf(rd_kafka_conf_new());
    char reason[512];
    for (const auto& [name, value] : config.properties()) {
        if (is_secret_property(name)) redact_in_logs(value);
        const auto result =
            rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), reason, sizeof reason);
        if (result == RD_KAFKA_CONF_UNKNOWN)
            throw config_error(name, fmt::format("unknown librdkafka property '{}' (see "
                                                 "CONFIGURATION.md of librdkafka for valid names)",
                                                 name));
        if (result == RD_KAFKA_CONF_INVALID)
            throw config_error(
                name, is_secret_property(name)
                          ? fmt::format("invalid value for property '{}'", name)
                          : fmt::format("invalid value for property '{}': {}", name, reason));
    }
    rd_kafka_conf_set_log_cb(conf.get(), route_librdkafka_log);
    return conf;
}

client_ptr make_client(rd_kafka_type_t type, conf_ptr conf) {
    char reason[512];
    client_ptr client(rd_kafka_new(type, conf.get(), reason, sizeof reason));
    if (!client) throw config_error("", fmt::format("cannot create Kafka client: {}", reason));
    conf.release();  // rd_kafka_new took ownership on success
    return client;
}

void throw_if_error(rd_kafka_resp_err_t err, std::string_view what) {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        throw kafka_error(make_kafka_error(err), std::string(what));
}

}  // namespace detail
}  // namespace kt
