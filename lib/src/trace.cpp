// W3C trace context: traceparent parsing and formatting, tracestate checks, child span ids.
#include <kt/trace.hpp>

#include <algorithm>
#include <random>
#include <vector>

namespace kt {
namespace {

constexpr std::size_t traceparent_size = 55;  // "vv-" + 32 + "-" + 16 + "-" + 2
constexpr std::size_t max_trace_state_members = 32;
constexpr std::size_t long_trace_state_member = 128;  // dropped first when truncating

int lower_hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case is invalid in traceparent
}

/// Reads 2 × out.size() lower-case hex digits; false on anything else.
template <std::size_t N>
bool read_hex(std::string_view text, std::array<std::uint8_t, N>& out) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        const int high = lower_hex_digit(text[2 * i]);
        const int low = lower_hex_digit(text[2 * i + 1]);
        if (high < 0 || low < 0) return false;
        out[i] = static_cast<std::uint8_t>(high * 16 + low);
    }
    return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) noexcept {
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

template <std::size_t N>
void append_hex(std::string& out, const std::array<std::uint8_t, N>& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
}

bool is_lcalpha(char c) noexcept {
    return c >= 'a' && c <= 'z';
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_key_char(char c) noexcept {
    return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/// key = simple-key / tenant-id "@" system-id (W3C trace context, section 3.3.1.3.1).
bool valid_member_key(std::string_view key) noexcept {
    const auto at = key.find('@');
    if (at == std::string_view::npos)
        return !key.empty() && key.size() <= 256 && is_lcalpha(key[0]) &&
               std::all_of(key.begin(), key.end(), is_key_char);
    const auto tenant = key.substr(0, at);
    const auto system = key.substr(at + 1);
    return !tenant.empty() && tenant.size() <= 241 &&
           (is_lcalpha(tenant[0]) || is_digit(tenant[0])) &&
           std::all_of(tenant.begin(), tenant.end(), is_key_char) && !system.empty() &&
           system.size() <= 14 && is_lcalpha(system[0]) &&
           std::all_of(system.begin(), system.end(), is_key_char);
}

/// value = 0*255(chr) nblk-chr; chr = SP / nblk-chr; nblk-chr = printable ASCII but ',' and '='.
bool valid_member_value(std::string_view value) noexcept {
    if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
    return std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

std::string_view trim_blanks(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// The tracestate to keep: its members joined by ',' (empty members and blanks around them
/// dropped), truncated to max_trace_state_size as the spec says (members longer than 128 first,
/// then from the end); nullopt when malformed or with more than 32 members.
std::optional<std::string> checked_trace_state(std::string_view header) {
    std::vector<std::string_view> members;
    while (!header.empty()) {
        const auto comma = header.find(',');
        const auto member = trim_blanks(header.substr(0, comma));
        header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
        if (member.empty()) continue;
        const auto equals = member.find('=');
        if (equals == std::string_view::npos || !valid_member_key(member.substr(0, equals)) ||
            !valid_member_value(member.substr(equals + 1)))
            return std::nullopt;
        if (members.size() == max_trace_state_members) return std::nullopt;
        members.push_back(member);
    }
    auto joined_size = [&] {
        std::size_t size = 0;
        for (auto m : members) size += m.size() + 1;
        return size == 0 ? 0 : size - 1;
    };
    if (joined_size() > max_trace_state_size)
        std::erase_if(members,
                      [](std::string_view m) { return m.size() > long_trace_state_member; });
    while (joined_size() > max_trace_state_size) members.pop_back();
    std::string kept;
    for (auto m : members) {
        if (!kept.empty()) kept.push_back(',');
        kept.append(m);
    }
    return kept;
}

/// A non-zero random span id. Each thread has its own generator, seeded once from the system's
/// entropy: span ids are drawn on shard threads concurrently and must never need a lock.
std::array<std::uint8_t, 8> random_span_id() {
    thread_local std::mt19937_64 generator{[] {
        std::random_device entropy;
        std::seed_seq seed{entropy(), entropy(), entropy(), entropy()};
        return std::mt19937_64(seed);
    }()};
    std::uint64_t bits = 0;
    while (bits == 0) bits = generator();
    std::array<std::uint8_t, 8> id{};
    for (auto& b : id) {
        b = static_cast<std::uint8_t>(bits);
        bits >>= 8;
    }
    return id;
}

}  // namespace

std::string trace_context::trace_id_hex() const {
    std::string out;
    append_hex(out, trace_id);
    return out;
}

std::string trace_context::span_id_hex() const {
    std::string out;
    append_hex(out, span_id);
    return out;
}

std::string trace_context::traceparent() const {
    std::string out;
    out.reserve(traceparent_size);
    out.append("00-");
    append_hex(out, trace_id);
    out.push_back('-');
    append_hex(out, span_id);
    out.push_back('-');
    append_hex(out, std::array<std::uint8_t, 1>{flags});
    return out;
}

trace_context trace_context::child() const {
    trace_context c = *this;
    c.span_id = random_span_id();
    return c;
}

std::optional<trace_context> parse_trace_context(std::string_view traceparent,
                                                 std::optional<std::string_view> tracestate) {
    if (traceparent.size() < traceparent_size) return std::nullopt;
    std::array<std::uint8_t, 1> version{};
    if (!read_hex(traceparent.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    // Version 00 has exactly four fields; a later one may add fields after another '-'.
    if (version[0] == 0 ? traceparent.size() != traceparent_size
                        : traceparent.size() > traceparent_size && traceparent[55] != '-')
        return std::nullopt;
    if (traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-')
        return std::nullopt;
    trace_context context;
    std::array<std::uint8_t, 1> flags{};
    if (!read_hex(traceparent.substr(3, 32), context.trace_id) ||
        !read_hex(traceparent.substr(36, 16), context.span_id) ||
        !read_hex(traceparent.substr(53, 2), flags))
        return std::nullopt;
    if (all_zero(context.trace_id) || all_zero(context.span_id)) return std::nullopt;
    context.flags = flags[0];
    if (tracestate)
        if (auto kept = checked_trace_state(*tracestate)) context.trace_state = std::move(*kept);
    return context;
}

std::string_view to_string(handler_outcome outcome) noexcept {
    switch (outcome) {
        case handler_outcome::ok:
            return "ok";
        case handler_outcome::failed:
            return "failed";
        case handler_outcome::retried:
            return "retried";
        case handler_outcome::dead_lettered:
            return "dead_lettered";
        case handler_outcome::cancelled:
            return "cancelled";
    }
    return "unknown";
}

}  // namespace kt
