// Configuration files: Boost.JSON parsing, validation that names JSON paths, ${ENV} substitution,
// redacted dumps, and binding handlers to triggers by name.
#include <kt/config_file.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <span>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <kt/errors.hpp>
#include <kt/producer.hpp>

#include "host/trigger_validation.hpp"
#include "rdkafka_handles.hpp"

namespace kt {
namespace json = boost::json;
namespace {

// ---------------------------------------------------------------- paths, errors, descriptions

std::string member_path(const std::string& parent, std::string_view key) {
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_';
    });
    return plain ? fmt::format("{}.{}", parent, key) : fmt::format("{}[\"{}\"]", parent, key);
}

/// A librdkafka property's path is always bracketed: properties["fetch.wait.max.ms"].
std::string property_path(const std::string& properties, std::string_view name) {
    return fmt::format("{}[\"{}\"]", properties, name);
}

std::string element_path(const std::string& parent, std::size_t index) {
    return fmt::format("{}[{}]", parent, index);
}

[[noreturn]] void fail(const std::string& path, std::string_view problem) {
    throw config_error(path, fmt::format("config: {}: {}", path, problem));
}

/// The kind of a JSON value, never its content (it may be a secret).
std::string_view kind_name(const json::value& v) {
    switch (v.kind()) {
        case json::kind::object:
            return "an object";
        case json::kind::array:
            return "an array";
        case json::kind::string:
            return "a string";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::null:
            return "null";
        default:
            return "a number";
    }
}

/// Numbers and booleans as written (for typed, non-secret fields); other kinds by name only.
std::string describe(const json::value& v) {
    if (v.is_number() || v.is_bool()) return json::serialize(v);
    return std::string(kind_name(v));
}

std::string join(const std::vector<std::string>& names) {
    if (names.empty()) return "none";
    return fmt::format("{}", fmt::join(names, ", "));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// " (did you mean x?)" for a near miss, otherwise the keys allowed there.
std::string unknown_key_hint(std::string_view key, std::span<const std::string_view> known) {
    auto closest = std::min_element(known.begin(), known.end(), [&](auto a, auto b) {
        return edit_distance(key, a) < edit_distance(key, b);
    });
    if (closest != known.end() && edit_distance(key, *closest) <= 2)
        return fmt::format(" (did you mean {}?)", *closest);
    return fmt::format(" (known: {})", fmt::join(known, ", "));
}

// ---------------------------------------------------------------- ${ENV} substitution

bool is_variable_name(std::string_view name) {
    return !name.empty() && !std::isdigit(static_cast<unsigned char>(name.front())) &&
           std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

/// Replaces ${NAME} by the variable's value and $${ by a literal ${. Errors name the variable,
/// never a value.
std::string substitute_variables(std::string_view text, const std::string& path,
                                 const environment& env) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        if (text.substr(i, 3) == "$${") {
            out += "${";
            i += 3;
        } else if (text.substr(i, 2) == "${") {
            const auto close = text.find('}', i + 2);
            const auto name = close == std::string_view::npos ? std::string_view{}
                                                              : text.substr(i + 2, close - i - 2);
            if (!is_variable_name(name))
                fail(path,
                     "malformed ${...}: use ${NAME} (letters, digits, _) or $${ for a literal");
            const auto value = env(std::string(name));
            if (!value) fail(path, fmt::format("environment variable {} is not set", name));
            out += *value;
            i = close + 1;
        } else {
            out += text[i++];
        }
    }
    return out;
}

// ---------------------------------------------------------------- enums

template <typename Enum>
struct choice {
    std::string_view name;
    Enum value;
};

constexpr choice<sharing> sharing_choices[] = {
    {"per_group", sharing::per_group}, {"per_topic", sharing::per_topic}, {"off", sharing::off}};
constexpr choice<kt::ordering> ordering_choices[] = {{"partition", kt::ordering::partition},
                                                     {"key", kt::ordering::key},
                                                     {"none", kt::ordering::none}};
constexpr choice<delivery_guarantee> delivery_choices[] = {
    {"at_least_once", delivery_guarantee::at_least_once},
    {"at_most_once", delivery_guarantee::at_most_once},
    {"exactly_once", delivery_guarantee::exactly_once}};

template <typename Enum, std::size_t N>
std::string_view name_of(Enum value, const choice<Enum> (&choices)[N]) {
    for (const auto& c : choices)
        if (c.value == value) return c.name;
    return "?";
}

// ---------------------------------------------------------------- typed reading of one object

/// Reads one JSON object at `path`: refuses keys outside `keys`, converts and range-checks values
/// and substitutes ${ENV} in strings. Every error names the JSON path.
class object_reader {
  public:
    object_reader(const json::value& value, std::string path,
                  std::span<const std::string_view> keys, const environment& env)
        : path_(std::move(path)), env_(env) {
        if (!value.is_object())
            fail(path_, fmt::format("expected an object, got {}", kind_name(value)));
        object_ = &value.get_object();
        for (const auto& entry : *object_)
            if (std::find(keys.begin(), keys.end(), entry.key()) == keys.end())
                fail(at(entry.key()), "unknown key" + unknown_key_hint(entry.key(), keys));
    }

    const std::string& path() const noexcept { return path_; }
    std::string at(std::string_view key) const { return member_path(path_, key); }
    const json::value* find(std::string_view key) const { return object_->if_contains(key); }
    const environment& env() const noexcept { return env_; }

    std::optional<std::string> optional_string(std::string_view key) const {
        const auto* v = find(key);
        if (!v) return std::nullopt;
        if (!v->is_string()) fail(at(key), fmt::format("expected a string, got {}", kind_name(*v)));
        auto text = substitute_variables(v->get_string(), at(key), env_);
        if (text.empty()) fail(at(key), "expected a non-empty string");
        return text;
    }

    std::string required_string(std::string_view key) const {
        auto text = optional_string(key);
        if (!text) fail(at(key), "missing required key");
        return *text;
    }

    std::vector<std::string> strings(std::string_view key) const {
        std::vector<std::string> items;
        const auto* v = find(key);
        if (!v) return items;
        if (!v->is_array())
            fail(at(key), fmt::format("expected an array of strings, got {}", kind_name(*v)));
        for (std::size_t i = 0; i < v->get_array().size(); ++i) {
            const auto& item = v->get_array()[i];
            const auto path = element_path(at(key), i);
            if (!item.is_string() || item.get_string().empty())
                fail(path, fmt::format("expected a non-empty string, got {}", kind_name(item)));
            items.push_back(substitute_variables(item.get_string(), path, env_));
        }
        return items;
    }

    template <typename T>
    T integer(std::string_view key, T min, T fallback) const {
        const auto* v = find(key);
        if (!v) return fallback;
        const auto max = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
        const bool fits =
            (v->is_uint64() && v->get_uint64() >= std::uint64_t(min) && v->get_uint64() <= max) ||
            (v->is_int64() && v->get_int64() >= std::int64_t(min) &&
             std::uint64_t(v->get_int64()) <= max);
        if (!fits)
            fail(at(key), fmt::format("expected {}, got {}", integer_kind(std::uint64_t(min), max),
                                      describe(*v)));
        return static_cast<T>(v->to_number<std::uint64_t>());
    }

    std::chrono::milliseconds millis(std::string_view key, std::int64_t min,
                                     std::chrono::milliseconds fallback) const {
        return std::chrono::milliseconds(integer<std::int64_t>(key, min, fallback.count()));
    }

    double number(std::string_view key, double min, double max, double fallback) const {
        const auto* v = find(key);
        if (!v) return fallback;
        if (!v->is_number() || v->to_number<double>() < min || v->to_number<double>() > max)
            fail(at(key), max == std::numeric_limits<double>::max()
                              ? fmt::format("expected a number >= {}, got {}", min, describe(*v))
                              : fmt::format("expected a number from {} to {}, got {}", min, max,
                                            describe(*v)));
        return v->to_number<double>();
    }

    bool boolean(std::string_view key, bool fallback) const {
        const auto* v = find(key);
        if (!v) return fallback;
        if (!v->is_bool())
            fail(at(key), fmt::format("expected true or false, got {}", describe(*v)));
        return v->get_bool();
    }

    template <typename Enum, std::size_t N>
    Enum choose(std::string_view key, const choice<Enum> (&choices)[N], Enum fallback) const {
        const auto text = optional_string(key);
        if (!text) return fallback;
        std::vector<std::string> names;
        for (const auto& c : choices) {
            if (c.name == *text) return c.value;
            names.emplace_back(c.name);
        }
        fail(at(key), fmt::format("expected one of {}, got \"{}\"", join(names), *text));
    }

    /// A nested object, read with its own keys; nullopt when absent.
    std::optional<object_reader> child(std::string_view key,
                                       std::span<const std::string_view> keys) const {
        const auto* v = find(key);
        if (!v) return std::nullopt;
        return object_reader(*v, at(key), keys, env_);
    }

    /// Calls `read(element, path)` for each element of the array at `key` (absent: none).
    template <typename Read>
    void for_each(std::string_view key, Read read) const {
        const auto* v = find(key);
        if (!v) return;
        if (!v->is_array()) fail(at(key), fmt::format("expected an array, got {}", kind_name(*v)));
        for (std::size_t i = 0; i < v->get_array().size(); ++i)
            read(v->get_array()[i], element_path(at(key), i));
    }

  private:
    static std::string integer_kind(std::uint64_t min, std::uint64_t max) {
        const auto base = min == 0   ? std::string("a non-negative integer")
                          : min == 1 ? std::string("a positive integer")
                                     : fmt::format("an integer >= {}", min);
        return max >= std::uint64_t(std::numeric_limits<std::uint32_t>::max())
                   ? base
                   : fmt::format("{} up to {}", base, max);
    }

    std::string path_;
    const environment& env_;
    const json::object* object_ = nullptr;
};

// ---------------------------------------------------------------- librdkafka properties

/// A property as written: its value and the JSON path it came from.
struct written_property {
    std::string value;
    std::string path;
};
using property_map = std::map<std::string, written_property>;

/// librdkafka checks the name and value now, so the error can name the JSON path before start.
void validate_property(const std::string& name, const std::string& value, const std::string& path) {
    consumer_config single;
    single.set(name, value);
    try {
        detail::check_managed_property(name, value);
        (void)detail::make_conf(single);
    } catch (const config_error& e) {
        fail(path, e.what());  // make_conf never quotes a secret's value
    }
}

void add_property(property_map& properties, const std::string& name, std::string value,
                  const std::string& path) {
    if (auto it = properties.find(name); it != properties.end())
        fail(path, fmt::format("property '{}' is set twice (also at {})", name, it->second.path));
    validate_property(name, value, path);
    properties.emplace(name, written_property{std::move(value), path});
}

/// A property value: a string (with ${ENV}), an integer or a boolean, as librdkafka's text.
std::string property_text(const json::value& v, const std::string& path, const environment& env) {
    if (v.is_string()) return substitute_variables(v.get_string(), path, env);
    if (v.is_int64() || v.is_uint64() || v.is_bool()) return json::serialize(v);
    fail(path, fmt::format("expected a string, integer or boolean, got {}", kind_name(v)));
}

/// A typed key that stands for a librdkafka property (e.g. bootstrap_servers).
struct property_key {
    std::string_view key;
    std::string_view property;
};

constexpr property_key common_property_keys[] = {{"bootstrap_servers", "bootstrap.servers"},
                                                 {"client_id", "client.id"}};
constexpr property_key client_id_key[] = {{"client_id", "client.id"}};
constexpr property_key security_property_keys[] = {
    {"protocol", "security.protocol"},
    {"sasl_mechanism", "sasl.mechanism"},
    {"sasl_username", "sasl.username"},
    {"sasl_password", "sasl.password"},
    {"ssl_ca_location", "ssl.ca.location"},
    {"ssl_certificate_location", "ssl.certificate.location"},
    {"ssl_key_location", "ssl.key.location"},
    {"ssl_key_password", "ssl.key.password"},
};

void read_mapped(const object_reader& r, std::span<const property_key> keys,
                 property_map& properties) {
    for (const auto& [key, property] : keys)
        if (const auto* v = r.find(key))
            add_property(properties, std::string(property), property_text(*v, r.at(key), r.env()),
                         r.at(key));
}

/// The free-form "properties" object of a section.
void read_properties(const object_reader& r, property_map& properties) {
    const auto* v = r.find("properties");
    if (!v) return;
    const auto path = r.at("properties");
    if (!v->is_object()) fail(path, fmt::format("expected an object, got {}", kind_name(*v)));
    for (const auto& entry : v->get_object()) {
        const std::string name(entry.key());
        const auto at = property_path(path, name);
        add_property(properties, name, property_text(entry.value(), at, r.env()), at);
    }
}

void overlay(consumer_config& config, const property_map& properties) {
    for (const auto& [name, written] : properties) config.set(name, written.value);
}

// ---------------------------------------------------------------- sections

constexpr std::string_view root_keys[] = {"common", "consumers", "producers", "triggers"};
constexpr std::string_view common_keys[] = {"bootstrap_servers",
                                            "client_id",
                                            "security",
                                            "sharing",
                                            "commit_interval_ms",
                                            "drain_timeout_ms",
                                            "revoke_drain_timeout_ms",
                                            "statistics_interval_ms",
                                            "outage_recreate_after_ms",
                                            "health",
                                            "channel_capacity",
                                            "properties"};
constexpr std::string_view health_keys[] = {"stuck_after_ms", "max_lag", "scale_up_lag"};
constexpr std::string_view security_keys[] = {
    "protocol",        "sasl_mechanism",           "sasl_username",    "sasl_password",
    "ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "ssl_key_password"};
constexpr std::string_view consumer_keys[] = {"name",     "group_id",         "client_id", "topics",
                                              "delivery", "channel_capacity", "properties"};
constexpr std::string_view producer_keys[] = {"name",     "client_id",   "topics",
                                              "delivery", "idempotence", "properties"};
constexpr std::string_view trigger_keys[] = {"name",
                                             "consumer",
                                             "topic",
                                             "handler",
                                             "ordering",
                                             "max_in_flight",
                                             "max_backlog",
                                             "retry",
                                             "dead_letter",
                                             "delivery",
                                             "batch",
                                             "transactional_id",
                                             "transaction_max_messages",
                                             "transaction_interval_ms"};
constexpr std::string_view retry_keys[] = {"max_attempts", "initial_backoff_ms", "max_backoff_ms",
                                           "multiplier", "jitter"};
constexpr std::string_view dead_letter_keys[] = {"enabled", "topic", "producer"};
constexpr std::string_view batch_keys[] = {"max_messages", "max_wait_ms"};
constexpr std::string_view transaction_keys[] = {"transactional_id", "transaction_max_messages",
                                                 "transaction_interval_ms"};

template <typename Named>
const Named* find_named(const std::vector<Named>& all, std::string_view name) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Named& n) { return n.name == name; });
    return it == all.end() ? nullptr : &*it;
}

template <typename Named>
const Named& resolve(const std::vector<Named>& all, const std::string& name,
                     const std::string& path, std::string_view what) {
    if (const auto* found = find_named(all, name)) return *found;
    std::vector<std::string> known;
    for (const auto& n : all) known.push_back(n.name);
    fail(path, fmt::format("unknown {} \"{}\" (known: {})", what, name, join(known)));
}

/// Names must be unique per section; remembers where each was defined.
void claim_name(std::map<std::string, std::string>& seen, const std::string& name,
                const std::string& path, std::string_view what) {
    auto [it, fresh] = seen.emplace(name, path);
    if (!fresh)
        fail(path, fmt::format("duplicate {} name \"{}\" (also {})", what, name, it->second));
}

bool has_bootstrap(const consumer_config& config) {
    return !config.get("bootstrap.servers").empty() || !config.get("metadata.broker.list").empty();
}

class config_parser {
  public:
    explicit config_parser(const environment& env) : env_(env) {}

    app_config parse(const json::value& root) {
        object_reader r(root, "$", root_keys, env_);
        if (auto common = r.child("common", common_keys)) read_common(*common);
        std::map<std::string, std::string> names;
        r.for_each("producers", [&](const json::value& v, const std::string& path) {
            config_.producers.push_back(read_producer(v, path));
            claim_name(names, config_.producers.back().name, path + ".name", "producer");
        });
        names.clear();
        r.for_each("consumers", [&](const json::value& v, const std::string& path) {
            config_.consumers.push_back(read_consumer(v, path));
            claim_name(names, config_.consumers.back().name, path + ".name", "consumer");
        });
        names.clear();
        r.for_each("triggers", [&](const json::value& v, const std::string& path) {
            config_.triggers.push_back(read_trigger(v, path, config_.triggers.size()));
            claim_name(names, config_.triggers.back().options.name, path + ".name", "trigger");
        });
        if (capacity_) config_.host.channel_capacity = capacity_->value;
        return std::move(config_);
    }

  private:
    struct capacity_setting {
        std::size_t value;
        std::string path;
    };

    void read_common(const object_reader& r) {
        read_mapped(r, common_property_keys, common_);
        if (auto security = r.child("security", security_keys))
            read_mapped(*security, security_property_keys, common_);
        read_properties(r, common_);
        auto& host = config_.host;
        host.sharing = r.choose("sharing", sharing_choices, host.sharing);
        host.commit_interval = r.millis("commit_interval_ms", 1, host.commit_interval);
        host.drain_timeout = r.millis("drain_timeout_ms", 0, host.drain_timeout);
        host.revoke_drain_timeout =
            r.millis("revoke_drain_timeout_ms", 0, host.revoke_drain_timeout);
        host.statistics_interval = r.millis("statistics_interval_ms", 0, host.statistics_interval);
        host.outage_recreate_after =
            r.millis("outage_recreate_after_ms", 0, host.outage_recreate_after);
        if (auto health = r.child("health", health_keys)) {
            host.health.stuck_after = health->millis("stuck_after_ms", 1, host.health.stuck_after);
            host.health.max_lag = health->integer<std::int64_t>("max_lag", 0, host.health.max_lag);
            host.health.scale_up_lag =
                health->integer<std::int64_t>("scale_up_lag", 0, host.health.scale_up_lag);
        }
        read_channel_capacity(r);
    }

    /// The host has one ring capacity for every consumer: values given in several places must
    /// agree.
    void read_channel_capacity(const object_reader& r) {
        if (!r.find("channel_capacity")) return;
        const auto value = r.integer<std::size_t>("channel_capacity", 1, 0);
        if (capacity_ && capacity_->value != value)
            fail(r.at("channel_capacity"),
                 fmt::format("{} differs from {} at {} (one capacity applies to every consumer "
                             "of a host)",
                             value, capacity_->value, capacity_->path));
        if (!capacity_) capacity_ = capacity_setting{value, r.at("channel_capacity")};
    }

    void require_bootstrap(const consumer_config& config, const std::string& path,
                           std::string_view what) const {
        if (!has_bootstrap(config))
            fail(path, fmt::format("{} has no bootstrap servers: set $.common.bootstrap_servers "
                                   "or properties[\"bootstrap.servers\"]",
                                   what));
    }

    /// The keys named consumers and producers share.
    template <typename Named>
    static Named read_identity(const object_reader& r) {
        Named named;
        named.name = r.required_string("name");
        named.topics = r.strings("topics");
        named.delivery = r.choose("delivery", delivery_choices, named.delivery);
        return named;
    }

    named_consumer read_consumer(const json::value& v, const std::string& path) {
        object_reader r(v, path, consumer_keys, env_);
        auto c = read_identity<named_consumer>(r);
        read_channel_capacity(r);
        property_map own;
        add_property(own, "group.id", r.required_string("group_id"), r.at("group_id"));
        read_mapped(r, client_id_key, own);
        read_properties(r, own);
        overlay(c.config, common_);
        overlay(c.config, own);
        require_bootstrap(c.config, path, fmt::format("consumer \"{}\"", c.name));
        return c;
    }

    named_producer read_producer(const json::value& v, const std::string& path) {
        object_reader r(v, path, producer_keys, env_);
        auto p = read_identity<named_producer>(r);
        property_map own;
        read_mapped(r, client_id_key, own);
        if (r.find("idempotence"))
            add_property(own, "enable.idempotence",
                         r.boolean("idempotence", true) ? "true" : "false", r.at("idempotence"));
        read_properties(r, own);
        apply_producer_delivery(p.delivery, r.at("delivery"), own);
        consumer_config common;
        overlay(common, common_);
        p.config = producer_config_for(common);  // consumer-only common properties dropped
        overlay(p.config, own);
        require_bootstrap(p.config, path, fmt::format("producer \"{}\"", p.name));
        return p;
    }

    /// at_most_once sends once (no retries, so no idempotence); exactly_once means idempotent
    /// (transactions belong to exactly_once triggers).
    static void apply_producer_delivery(delivery_guarantee delivery, const std::string& path,
                                        property_map& own) {
        const auto idempotence = own.find("enable.idempotence");
        if (delivery == delivery_guarantee::at_most_once) {
            for (const char* name : {"enable.idempotence", "message.send.max.retries", "retries"})
                if (auto it = own.find(name); it != own.end())
                    fail(it->second.path,
                         "conflicts with delivery \"at_most_once\" (which sends "
                         "once: no retries, no idempotence)");
            own["enable.idempotence"] = {"false", path};
            own["message.send.max.retries"] = {"0", path};
        } else if (delivery == delivery_guarantee::exactly_once) {
            if (idempotence != own.end() && idempotence->second.value == "false")
                fail(idempotence->second.path,
                     "conflicts with delivery \"exactly_once\" (which needs idempotence)");
            own["enable.idempotence"] = {"true", path};
        }
    }

    configured_trigger read_trigger(const json::value& v, const std::string& path,
                                    std::size_t index) {
        object_reader r(v, path, trigger_keys, env_);
        configured_trigger t;
        t.index = index;
        auto& o = t.options;
        o.name = r.required_string("name");
        t.consumer = r.required_string("consumer");
        const auto consumer_path = r.at("consumer");
        const auto& consumer = resolve(config_.consumers, t.consumer, consumer_path, "consumer");
        o.consumer = consumer.config;
        o.topic = r.required_string("topic");
        if (!consumer.topics.empty() && std::find(consumer.topics.begin(), consumer.topics.end(),
                                                  o.topic) == consumer.topics.end())
            fail(r.at("topic"), fmt::format("\"{}\" is not among consumer \"{}\"'s topics ({})",
                                            o.topic, consumer.name, join(consumer.topics)));
        t.handler = r.required_string("handler");
        o.ordering = r.choose("ordering", ordering_choices, o.ordering);
        o.max_in_flight = r.integer<unsigned>("max_in_flight", 1, o.max_in_flight);
        o.max_backlog = r.integer<std::size_t>("max_backlog", 1, o.max_backlog);
        o.delivery = read_trigger_delivery(r, consumer);
        if (auto retry = r.child("retry", retry_keys)) o.retry = read_retry(*retry);
        if (auto dead_letter = r.child("dead_letter", dead_letter_keys))
            read_dead_letter(*dead_letter, t);
        if (o.dead_letter.topic.empty()) o.dead_letter.topic = o.topic + ".dlq";  // the default
        if (auto batch = r.child("batch", batch_keys)) t.batch = read_batch(*batch);
        read_transaction(r, o);
        const auto kind = t.batch ? std::optional(detail::handler_kind::batch) : std::nullopt;
        if (auto problem = detail::find_problem(o, kind))
            fail(json_path(r, problem->field), problem->message);
        return t;
    }

    /// Where a trigger_options field is written in the trigger's object `r`.
    static std::string json_path(const object_reader& r, std::string_view field) {
        if (field == "retry.max_backoff")
            return member_path(
                r.at("retry"),
                r.find("retry") && r.find("retry")->as_object().contains("max_backoff_ms")
                    ? "max_backoff_ms"
                    : "initial_backoff_ms");
        if (field == "dead_letter.topic")
            return r.find("dead_letter") ? member_path(r.at("dead_letter"), "topic")
                                         : r.at("topic");
        if (field == "delivery" && r.find("batch")) return r.at("batch");
        return r.at(field);
    }

    /// A trigger inherits its consumer's guarantee; stating another one is a mistake.
    static delivery_guarantee read_trigger_delivery(const object_reader& r,
                                                    const named_consumer& consumer) {
        const auto delivery = r.choose("delivery", delivery_choices, consumer.delivery);
        if (delivery != consumer.delivery)
            fail(r.at("delivery"),
                 fmt::format("\"{}\" differs from consumer \"{}\"'s delivery \"{}\"",
                             name_of(delivery, delivery_choices), consumer.name,
                             name_of(consumer.delivery, delivery_choices)));
        return delivery;
    }

    static retry_policy read_retry(const object_reader& r) {
        retry_policy p;
        p.max_attempts = r.integer<unsigned>("max_attempts", 1, p.max_attempts);
        p.initial_backoff = r.millis("initial_backoff_ms", 0, p.initial_backoff);
        p.max_backoff = r.millis("max_backoff_ms", 0, p.max_backoff);
        p.multiplier =
            r.number("multiplier", 1.0, std::numeric_limits<double>::max(), p.multiplier);
        p.jitter = r.number("jitter", 0.0, 1.0, p.jitter);
        return p;
    }

    void read_dead_letter(const object_reader& r, configured_trigger& t) const {
        auto& dead_letter = t.options.dead_letter;
        dead_letter.enabled = r.boolean("enabled", dead_letter.enabled);
        dead_letter.topic = r.optional_string("topic").value_or("");
        if (auto name = r.optional_string("producer")) {
            dead_letter.producer =
                resolve(config_.producers, *name, r.at("producer"), "producer").config;
            t.dead_letter_producer = *name;
        }
    }

    static batch_options read_batch(const object_reader& r) {
        batch_options b;
        b.max_messages = r.integer<std::size_t>("max_messages", 1, b.max_messages);
        b.max_wait = r.millis("max_wait_ms", 0, b.max_wait);
        return b;
    }

    static void read_transaction(const object_reader& r, trigger_options& o) {
        if (o.delivery != delivery_guarantee::exactly_once) {
            for (auto key : transaction_keys)
                if (r.find(key)) fail(r.at(key), "only used with delivery \"exactly_once\"");
            return;
        }
        o.transactional_id = r.optional_string("transactional_id").value_or("");
        o.transaction_max_messages =
            r.integer<std::size_t>("transaction_max_messages", 1, o.transaction_max_messages);
        o.transaction_interval = r.millis("transaction_interval_ms", 1, o.transaction_interval);
    }

    const environment& env_;
    app_config config_;
    property_map common_;
    std::optional<capacity_setting> capacity_;
};

std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
    const auto before = text.substr(0, std::min(offset, text.size()));
    const auto line_start = before.rfind('\n');
    const auto line = 1 + std::size_t(std::count(before.begin(), before.end(), '\n'));
    return {line, line_start == std::string_view::npos ? offset + 1 : offset - line_start};
}

/// basic_parser handler that finds a key written twice in one object: Boost.JSON would keep the
/// last value silently, and the setting written first would be lost without a word.
class duplicate_key_finder {
  public:
    static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();

    /// Path of the repeated member, once found.
    std::optional<std::string> duplicate;

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) { return open(true); }
    bool on_object_end(std::size_t, json::error_code&) { return close(); }
    bool on_array_begin(json::error_code&) { return open(false); }
    bool on_array_end(std::size_t, json::error_code&) { return close(); }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        key_.append(s);
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        key_.append(s);
        auto& object = frames_.back();
        object.key = std::exchange(key_, {});
        if (!object.keys.insert(object.key).second) {
            duplicate = member_path(object.path, object.key);
            ec = json::error::syntax;  // stops the parser; parse_json reports `duplicate`
            return false;
        }
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return value(); }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return value(); }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return value(); }
    bool on_double(double, json::string_view, json::error_code&) { return value(); }
    bool on_bool(bool, json::error_code&) { return value(); }
    bool on_null(json::error_code&) { return value(); }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

  private:
    struct frame {
        bool object;
        std::string path;
        std::set<std::string, std::less<>> keys;  // objects
        std::string key;                          // objects: the member being read
        std::size_t index = 0;                    // arrays: the element being read
    };
    bool open(bool object) {
        std::string path = "$";
        if (!frames_.empty()) {
            const auto& parent = frames_.back();
            path = parent.object ? member_path(parent.path, parent.key)
                                 : element_path(parent.path, parent.index);
        }
        frames_.push_back({object, std::move(path)});
        return true;
    }
    bool close() {
        frames_.pop_back();
        return value();
    }
    bool value() {
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
        return true;
    }
    std::vector<frame> frames_;
    std::string key_;
};

json::value parse_json(std::string_view text) {
    json::parse_options options;
    options.allow_comments = true;
    options.allow_trailing_commas = true;
    {
        json::basic_parser<duplicate_key_finder> finder(options);
        json::error_code ec;
        finder.write_some(false, text.data(), text.size(), ec);
        if (const auto& duplicate = finder.handler().duplicate)
            fail(*duplicate, "written twice in one object (only one value can apply)");
    }  // syntax errors are reported below, with their line and column
    json::stream_parser parser({}, options);
    json::error_code ec;
    const auto consumed = parser.write(text.data(), text.size(), ec);
    if (!ec) parser.finish(ec);
    if (ec) {  // the text is not quoted: it may hold a secret
        const auto [line, column] = line_and_column(text, consumed);
        fail("$",
             fmt::format("invalid JSON at line {}, column {} ({})", line, column, ec.message()));
    }
    return parser.release();
}

// ---------------------------------------------------------------- dump

json::object redacted_properties(const consumer_config& config) {
    json::object out;
    for (const auto& [name, value] : config.properties())
        out[name] = is_secret_property(name) ? "***" : value;
    return out;
}

json::array string_array(const std::vector<std::string>& items) {
    return json::array(items.begin(), items.end());
}

json::object dump_trigger(const configured_trigger& t) {
    const auto& o = t.options;
    json::object out{{"name", o.name},
                     {"consumer", t.consumer},
                     {"topic", o.topic},
                     {"handler", t.handler},
                     {"ordering", name_of(o.ordering, ordering_choices)},
                     {"max_in_flight", o.max_in_flight},
                     {"max_backlog", o.max_backlog},
                     {"delivery", name_of(o.delivery, delivery_choices)},
                     {"retry", json::object{{"max_attempts", o.retry.max_attempts},
                                            {"initial_backoff_ms", o.retry.initial_backoff.count()},
                                            {"max_backoff_ms", o.retry.max_backoff.count()},
                                            {"multiplier", o.retry.multiplier},
                                            {"jitter", o.retry.jitter}}},
                     {"dead_letter", json::object{{"enabled", o.dead_letter.enabled},
                                                  {"topic", o.dead_letter.topic}}}};
    if (!t.dead_letter_producer.empty())
        out["dead_letter"].as_object()["producer"] = t.dead_letter_producer;
    if (t.batch)
        out["batch"] = json::object{{"max_messages", t.batch->max_messages},
                                    {"max_wait_ms", t.batch->max_wait.count()}};
    if (o.delivery == delivery_guarantee::exactly_once) {
        out["transactional_id"] = o.transactional_id;
        out["transaction_max_messages"] = o.transaction_max_messages;
        out["transaction_interval_ms"] = o.transaction_interval.count();
    }
    return out;
}

/// Handlers bound to one trigger each, before any is added.
bound_handler resolve_handler(const configured_trigger& t, const handler_registry& handlers) {
    const auto path = fmt::format("$.triggers[{}].handler", t.index);
    const auto* make = handlers.find(t.handler);
    if (!make)
        fail(path,
             fmt::format("unknown handler \"{}\" (known: {})", t.handler, join(handlers.names())));
    auto bound = (*make)(t);
    const bool present = std::visit([](const auto& h) { return static_cast<bool>(h); }, bound);
    if (!present) fail(path, fmt::format("handler \"{}\" is empty", t.handler));
    if (t.batch && !std::holds_alternative<batch_handler>(bound))
        fail(fmt::format("$.triggers[{}].batch", t.index),
             fmt::format("handler \"{}\" is not a batch handler", t.handler));
    if (t.options.delivery == delivery_guarantee::exactly_once &&
        !std::holds_alternative<transform_handler>(bound))
        fail(path, fmt::format("delivery \"exactly_once\" needs a transform handler; \"{}\" is not "
                               "one",
                               t.handler));
    return bound;
}

void add_bound(trigger_host& host, const configured_trigger& t, bound_handler bound) {
    try {
        if (auto* batch = std::get_if<batch_handler>(&bound))
            host.add_batch_trigger(t.options, t.batch.value_or(batch_options{}), std::move(*batch));
        else if (auto* transform = std::get_if<transform_handler>(&bound))
            host.add_trigger(t.options, std::move(*transform));
        else
            host.add_trigger(t.options, std::get<handler>(std::move(bound)));
    } catch (const config_error& e) {  // the host's messages hold no secret
        const auto path = fmt::format("$.triggers[{}]", t.index);
        throw config_error(path, fmt::format("config: {}: {}", path, e.what()));
    }
}

}  // namespace

const named_consumer* app_config::find_consumer(std::string_view name) const {
    return find_named(consumers, name);
}

const named_producer* app_config::find_producer(std::string_view name) const {
    return find_named(producers, name);
}

std::optional<std::string> process_environment(const std::string& name) {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
}

app_config parse_config(std::string_view json_text, const environment& env) {
    return config_parser(env).parse(parse_json(json_text));
}

app_config load_config(const std::filesystem::path& file, const environment& env) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw config_error(file.string(), fmt::format("config: cannot read {}: {}", file.string(),
                                                      std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), env);
}

std::string dump_redacted(const app_config& config) {
    const auto& host = config.host;
    json::array consumers, producers, triggers;
    for (const auto& c : config.consumers)
        consumers.push_back(json::object{{"name", c.name},
                                         {"topics", string_array(c.topics)},
                                         {"delivery", name_of(c.delivery, delivery_choices)},
                                         {"properties", redacted_properties(c.config)}});
    for (const auto& p : config.producers)
        producers.push_back(json::object{{"name", p.name},
                                         {"topics", string_array(p.topics)},
                                         {"delivery", name_of(p.delivery, delivery_choices)},
                                         {"properties", redacted_properties(p.config)}});
    for (const auto& t : config.triggers) triggers.push_back(dump_trigger(t));
    json::object host_json{
        {"sharing", name_of(host.sharing, sharing_choices)},
        {"commit_interval_ms", host.commit_interval.count()},
        {"drain_timeout_ms", host.drain_timeout.count()},
        {"revoke_drain_timeout_ms", host.revoke_drain_timeout.count()},
        {"statistics_interval_ms", host.statistics_interval.count()},
        {"outage_recreate_after_ms", host.outage_recreate_after.count()},
        {"health", json::object{{"stuck_after_ms", host.health.stuck_after.count()},
                                {"max_lag", host.health.max_lag},
                                {"scale_up_lag", host.health.scale_up_lag}}},
        {"channel_capacity", host.channel_capacity}};
    return json::serialize(json::object{{"host", std::move(host_json)},
                                        {"consumers", std::move(consumers)},
                                        {"producers", std::move(producers)},
                                        {"triggers", std::move(triggers)}});
}

namespace {
handler_registry::factory always(bound_handler h) {
    return [h = std::move(h)](const configured_trigger&) { return h; };
}
}  // namespace

handler_registry& handler_registry::add(std::string name, handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_transform(std::string name, transform_handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_batch(std::string name, batch_handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_factory(std::string name, factory make) {
    factories_[std::move(name)] = std::move(make);
    return *this;
}

const handler_registry::factory* handler_registry::find(std::string_view name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> handler_registry::names() const {
    std::vector<std::string> names;
    for (const auto& [name, make] : factories_) names.push_back(name);
    return names;
}

void check_handlers(const app_config& config, const handler_registry& handlers) {
    for (const auto& t : config.triggers) (void)resolve_handler(t, handlers);
}

void add_triggers(trigger_host& host, const app_config& config, const handler_registry& handlers) {
    std::vector<bound_handler> bound;
    for (const auto& t : config.triggers) bound.push_back(resolve_handler(t, handlers));
    for (std::size_t i = 0; i < config.triggers.size(); ++i)
        add_bound(host, config.triggers[i], std::move(bound[i]));
}

}  // namespace kt
