// Configuration files: JSON describing consumers, producers and triggers, validated before start,
// with ${ENV} secrets, redacted dumps and handlers bound by name in code.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <kt/config.hpp>
#include <kt/trigger_host.hpp>

namespace kt {

/// A named consumer of the file: common properties + its own, with group.id and client.id set.
struct named_consumer {
    std::string name;
    consumer_config config;
    std::vector<std::string> topics;  ///< when given, its triggers must use one of them
    delivery_guarantee delivery = delivery_guarantee::at_least_once;  ///< its triggers' default
};

/// A named producer: the common connection properties (consumer-only ones dropped) + its own.
struct named_producer {
    std::string name;
    producer_config config;
    std::vector<std::string> topics;  ///< the topics it writes (informational)
    delivery_guarantee delivery = delivery_guarantee::at_least_once;
};

/// A trigger of the file: its options fully filled (consumer config, dead letter topic) and the
/// names it refers to. `index` is its position in `$.triggers`.
struct configured_trigger {
    std::size_t index = 0;
    trigger_options options;
    std::string consumer;                ///< name of a named_consumer
    std::string handler;                 ///< bound in code through a handler_registry
    std::string dead_letter_producer;    ///< empty: the consumer's connection settings
    std::optional<batch_options> batch;  ///< set: a batch trigger
    std::string ordering_key;            ///< "header:<name>" (options.key_of), empty: the key
};

/// A parsed and validated configuration file.
struct app_config {
    host_options host;
    std::vector<named_consumer> consumers;
    std::vector<named_producer> producers;
    std::vector<configured_trigger> triggers;

    const named_consumer* find_consumer(std::string_view name) const;
    const named_producer* find_producer(std::string_view name) const;
};

/// Looks up `${NAME}` references; nullopt when NAME is unset.
using environment = std::function<std::optional<std::string>(const std::string& name)>;
/// The process environment (std::getenv).
std::optional<std::string> process_environment(const std::string& name);

/// Parses and validates a configuration (JSON, comments and trailing commas allowed): every
/// key, value and librdkafka property is checked and every reference resolved. Throws
/// kt::config_error whose property() is the JSON path (e.g. "$.triggers[1].max_in_flight") and
/// whose message names path and problem; secret values never appear in it.
app_config parse_config(std::string_view json_text, const environment& env = process_environment);
/// parse_config of a file; the file name prefixes error messages.
app_config load_config(const std::filesystem::path& file,
                       const environment& env = process_environment);

/// The effective configuration as JSON, every secret property value (kt::is_secret_property)
/// replaced by "***", whether it was written in the file or came from the environment.
std::string dump_redacted(const app_config& config);

/// A handler as bound to one trigger: plain, transform or batch.
using bound_handler = std::variant<handler, transform_handler, batch_handler>;

/// Handlers by the names configuration files use for them.
class handler_registry {
  public:
    /// Makes the handler of one trigger (e.g. to know its name); called by add_triggers.
    using factory = std::function<bound_handler(const configured_trigger&)>;

    handler_registry& add(std::string name, handler h);
    handler_registry& add_transform(std::string name, transform_handler h);
    handler_registry& add_batch(std::string name, batch_handler h);
    handler_registry& add_factory(std::string name, factory make);

    /// nullptr when no handler has this name.
    const factory* find(std::string_view name) const;
    /// The registered names, sorted.
    std::vector<std::string> names() const;

  private:
    std::map<std::string, factory, std::less<>> factories_;
};

/// Resolves every trigger's handler and checks it against its trigger (batch section, exactly_once
/// needs a transform), as add_triggers does first, without adding anything: for validating a file
/// before anything starts. Factories may thus be called twice per trigger.
void check_handlers(const app_config& config, const handler_registry& handlers);

/// Adds every trigger of `config` to `host` with its handler from `handlers`. Every handler is
/// resolved and checked against its trigger (batch section, exactly_once needs a transform) before
/// any trigger is added; throws kt::config_error naming "$.triggers[i].handler" (or the path the
/// host refused). A trigger the host refuses leaves the earlier ones added: do not start the host.
void add_triggers(trigger_host& host, const app_config& config, const handler_registry& handlers);

}  // namespace kt
