// librdkafka properties of a configuration file: each checked by librdkafka as it is read.
#include "config/properties.hpp"

#include <fmt/format.h>

#include <kt/errors.hpp>

#include "rdkafka_handles.hpp"

namespace kt::detail::config {
namespace {

/// A librdkafka property's path is always bracketed: properties["fetch.wait.max.ms"].
std::string property_path(const std::string& properties, std::string_view name) {
    return fmt::format("{}[\"{}\"]", properties, name);
}

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

/// A property value: a string (with ${ENV}), an integer or a boolean, as librdkafka's text.
std::string property_text(const json::value& v, const std::string& path, const environment& env) {
    if (v.is_string()) return substitute_variables(v.get_string(), path, env);
    if (v.is_int64() || v.is_uint64() || v.is_bool()) return json::serialize(v);
    fail(path, fmt::format("expected a string, integer or boolean, got {}", kind_name(v)));
}

}  // namespace

void add_property(property_map& properties, const std::string& name, std::string value,
                  const std::string& path) {
    if (auto it = properties.find(name); it != properties.end())
        fail(path, fmt::format("property '{}' is set twice (also at {})", name, it->second.path));
    validate_property(name, value, path);
    properties.emplace(name, written_property{std::move(value), path});
}

void read_mapped(const object_reader& r, std::span<const property_key> keys,
                 property_map& properties) {
    for (const auto& [key, property] : keys)
        if (const auto* v = r.find(key))
            add_property(properties, std::string(property), property_text(*v, r.at(key), r.env()),
                         r.at(key));
}

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

}  // namespace kt::detail::config
