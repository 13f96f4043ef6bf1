// Consumer configuration and the sharing key that decides which triggers share a consumer.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace kt {

/// librdkafka properties of a consumer (or producer), e.g. {"bootstrap.servers", "..."}.
/// A plain value type; validated when a trigger is added (unknown or invalid properties throw
/// `kt::config_error` naming the property).
class consumer_config {
  public:
    consumer_config() = default;
    consumer_config(std::initializer_list<std::pair<const std::string, std::string>> props)
        : props_(props) {}

    consumer_config& set(std::string name, std::string value) {
        props_[std::move(name)] = std::move(value);
        return *this;
    }
    /// Value of `name`, or empty when unset.
    std::string get(const std::string& name) const {
        auto it = props_.find(name);
        return it == props_.end() ? std::string{} : it->second;
    }
    bool contains(const std::string& name) const { return props_.count(name) != 0; }
    const std::map<std::string, std::string>& properties() const noexcept { return props_; }

    friend bool operator==(const consumer_config&, const consumer_config&) = default;

  private:
    std::map<std::string, std::string> props_;
};

using producer_config = consumer_config;

/// Which triggers may share one librdkafka consumer.
enum class sharing {
    per_group,  ///< equal effective config (brokers, group, security, ...) shares, across topics
    per_topic,  ///< as per_group, but only triggers on the same topic share
    off,        ///< every trigger gets its own consumer (the baseline)
};

/// When a message counts as consumed (DESIGN §4).
enum class delivery_guarantee {
    at_least_once,  ///< offset committed after the handler finished (default)
    at_most_once,   ///< offset committed (acknowledged) before the handler starts
    exactly_once,   ///< output and offset committed in one Kafka transaction
};

/// True for properties whose values are secrets (passwords, private keys, OAuth secrets). Their
/// values are hashed in sharing keys and never logged.
bool is_secret_property(std::string_view name) noexcept;

/// Identity of a shared consumer: the canonical effective config (sorted properties, normalised
/// bootstrap list) with secret values replaced by their SHA-256. Holds no secret in clear.
class sharing_key {
  public:
    /// Builds the key of a trigger on `topic` named `trigger_name` under `mode`.
    static sharing_key of(const consumer_config& config, sharing mode, std::string_view topic,
                          std::string_view trigger_name,
                          delivery_guarantee delivery = delivery_guarantee::at_least_once);

    /// The canonical text (secrets appear only as `sha256:<hex>`); safe to log.
    const std::string& canonical() const noexcept { return canonical_; }
    friend bool operator==(const sharing_key&, const sharing_key&) = default;
    friend auto operator<=>(const sharing_key&, const sharing_key&) = default;

  private:
    std::string canonical_;
};

/// Checks what add_trigger checks of a consumer config's properties, without creating a client
/// and without requiring bootstrap.servers or group.id: unknown names and invalid values (by
/// librdkafka), properties kafka-triggers manages set otherwise, classic-only properties under
/// group.protocol=consumer. Throws kt::config_error naming the property (never quoting a
/// secret), so a program can refuse a bad config before it starts anything. Thread-safe.
void check_consumer_properties(const consumer_config& config);

/// Normalises a bootstrap list: split on commas, trim, lower-case, sort, de-duplicate.
std::string normalise_bootstrap(std::string_view servers);

/// Returns `props` as "name=value" lines with secret values replaced by "***", for logs and dumps.
std::string redacted(const consumer_config& config);

}  // namespace kt
