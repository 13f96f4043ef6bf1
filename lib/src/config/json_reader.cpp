// JSON paths, errors and hints, ${ENV} substitution, and JSON text to a value (line, column, keys).
#include "config/json_reader.hpp"

#include <cctype>
#include <set>
#include <utility>

#include <fmt/ranges.h>
#include <boost/json/basic_parser_impl.hpp>

#include <kt/errors.hpp>

namespace kt::detail::config {

// ---------------------------------------------------------------- paths, errors, descriptions

std::string member_path(const std::string& parent, std::string_view key) {
    const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_';
    });
    return plain ? fmt::format("{}.{}", parent, key) : fmt::format("{}[\"{}\"]", parent, key);
}

std::string element_path(const std::string& parent, std::size_t index) {
    return fmt::format("{}[{}]", parent, index);
}

[[noreturn]] void fail(const std::string& path, std::string_view problem) {
    throw config_error(path, fmt::format("config: {}: {}", path, problem));
}

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

std::string describe(const json::value& v) {
    if (v.is_number() || v.is_bool()) return json::serialize(v);
    return std::string(kind_name(v));
}

std::string join(const std::vector<std::string>& names) {
    if (names.empty()) return "none";
    return fmt::format("{}", fmt::join(names, ", "));
}

namespace {

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

}  // namespace

std::string unknown_key_hint(std::string_view key, std::span<const std::string_view> known) {
    auto closest = std::min_element(known.begin(), known.end(), [&](auto a, auto b) {
        return edit_distance(key, a) < edit_distance(key, b);
    });
    if (closest != known.end() && edit_distance(key, *closest) <= 2)
        return fmt::format(" (did you mean {}?)", *closest);
    return fmt::format(" (known: {})", fmt::join(known, ", "));
}

// ---------------------------------------------------------------- ${ENV} substitution

namespace {

bool is_variable_name(std::string_view name) {
    return !name.empty() && !std::isdigit(static_cast<unsigned char>(name.front())) &&
           std::all_of(name.begin(), name.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

}  // namespace

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

// ---------------------------------------------------------------- JSON text

namespace {

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

}  // namespace

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

}  // namespace kt::detail::config
