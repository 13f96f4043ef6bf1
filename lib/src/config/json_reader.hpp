// Reading a configuration file's JSON: parsing, JSON paths and errors, ${ENV}, typed objects.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include <kt/config_file.hpp>

namespace kt::detail::config {
namespace json = boost::json;

// ---------------------------------------------------------------- paths, errors, descriptions

std::string member_path(const std::string& parent, std::string_view key);
std::string element_path(const std::string& parent, std::size_t index);
/// Throws kt::config_error for `path` ("config: <path>: <problem>").
[[noreturn]] void fail(const std::string& path, std::string_view problem);
/// The kind of a JSON value, never its content (it may be a secret).
std::string_view kind_name(const json::value& v);
/// Numbers and booleans as written (for typed, non-secret fields); other kinds by name only.
std::string describe(const json::value& v);
/// The names separated by ", ", or "none".
std::string join(const std::vector<std::string>& names);
/// " (did you mean x?)" for a near miss, otherwise the keys allowed there.
std::string unknown_key_hint(std::string_view key, std::span<const std::string_view> known);

// ---------------------------------------------------------------- ${ENV} substitution

/// Replaces ${NAME} by the variable's value and $${ by a literal ${. Errors name the variable,
/// never a value.
std::string substitute_variables(std::string_view text, const std::string& path,
                                 const environment& env);

// ---------------------------------------------------------------- JSON text

/// The JSON value of `text` (comments and trailing commas allowed). Errors give the line and
/// column of a syntax error, or the path of a key written twice in one object.
json::value parse_json(std::string_view text);

// ---------------------------------------------------------------- enums

template <typename Enum>
struct choice {
    std::string_view name;
    Enum value;
};

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

}  // namespace kt::detail::config
