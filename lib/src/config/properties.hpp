// librdkafka properties of a configuration file: validated as read, mapped keys, overlays.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>

#include <kt/config.hpp>

#include "config/json_reader.hpp"

namespace kt::detail::config {

/// A property as written: its value and the JSON path it came from.
struct written_property {
    std::string value;
    std::string path;
};
using property_map = std::map<std::string, written_property>;

/// A typed key that stands for a librdkafka property (e.g. bootstrap_servers).
struct property_key {
    std::string_view key;
    std::string_view property;
};

/// Adds property `name` written at `path` once librdkafka accepted it; a second setting is refused.
void add_property(property_map& properties, const std::string& name, std::string value,
                  const std::string& path);
/// The keys of `r` that stand for librdkafka properties.
void read_mapped(const object_reader& r, std::span<const property_key> keys,
                 property_map& properties);
/// The free-form "properties" object of a section.
void read_properties(const object_reader& r, property_map& properties);
/// Sets every property of `properties` on `config`.
void overlay(consumer_config& config, const property_map& properties);

}  // namespace kt::detail::config
