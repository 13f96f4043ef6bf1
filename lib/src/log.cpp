// Log sink, level filter and rate limiting of repeated lines.
#include "log.hpp"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace kt {
namespace {

log_level level_from_env() {
    const char* env = std::getenv("KT_LOG_LEVEL");
    if (!env) return log_level::info;
    if (!std::strcmp(env, "debug")) return log_level::debug;
    if (!std::strcmp(env, "warning")) return log_level::warning;
    if (!std::strcmp(env, "error")) return log_level::error;
    if (!std::strcmp(env, "off")) return log_level::off;
    return log_level::info;
}

std::atomic<log_level> g_level{level_from_env()};

const char* level_name(log_level level) {
    switch (level) {
        case log_level::debug:
            return "debug";
        case log_level::info:
            return "info";
        case log_level::warning:
            return "warn";
        case log_level::error:
            return "error";
        case log_level::off:
            break;
    }
    return "off";
}

/// A line printed within the last repeat_window, and how often it came again since.
struct recent_line {
    std::chrono::steady_clock::time_point printed;
    unsigned suppressed = 0;
};

constexpr auto repeat_window = std::chrono::seconds(10);
constexpr std::size_t max_recent_lines = 512;

struct sink_state {
    std::mutex mutex;
    std::function<void(log_level, std::string_view)> sink;
    std::unordered_map<std::string, recent_line> recent;  // rate limit per distinct line
    std::set<std::string, std::less<>> secrets;           // replaced by *** in every line
};

/// Each distinct line passes at most once per repeat_window (librdkafka repeats connection
/// errors per broker throughout an outage); the next one says how many were held back.
bool admit_repeat(sink_state& state, std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    if (state.recent.size() >= max_recent_lines)
        std::erase_if(state.recent, [&](const auto& entry) {
            return now - entry.second.printed >= repeat_window;
        });
    if (state.recent.size() >= max_recent_lines) state.recent.clear();
    auto [it, first] = state.recent.try_emplace(line, recent_line{now});
    if (!first && now - it->second.printed < repeat_window) {
        ++it->second.suppressed;
        return false;
    }
    if (it->second.suppressed > 0)
        line += fmt::format(" ({} identical line(s) suppressed)", it->second.suppressed);
    it->second = {now, 0};
    return true;
}

sink_state& sink() {
    // Immortal: librdkafka threads of a deliberately leaked client may still log during exit.
    static sink_state& state = *new sink_state;
    return state;
}

void write_stderr(log_level level, std::string_view text) {
    std::fprintf(stderr, "[kt %s] %.*s\n", level_name(level), static_cast<int>(text.size()),
                 text.data());
}

}  // namespace

void set_log_level(log_level level) noexcept {
    g_level.store(level, std::memory_order_relaxed);
}
log_level current_log_level() noexcept {
    return g_level.load(std::memory_order_relaxed);
}

void set_log_sink(std::function<void(log_level, std::string_view)> new_sink) {
    std::lock_guard lock(sink().mutex);
    sink().sink = std::move(new_sink);
}

namespace detail {

bool log_enabled(log_level level) noexcept {
    return level != log_level::off && level >= g_level.load(std::memory_order_relaxed);
}

void name_this_thread(const std::string& name) noexcept {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

void redact_in_logs(std::string_view secret) {
    if (secret.size() < 4) return;  // too short to tell apart from ordinary text
    std::lock_guard lock(sink().mutex);
    sink().secrets.emplace(secret);
}

void log_line(log_level level, std::string_view text, repeats policy) {
    auto& state = sink();
    std::lock_guard lock(state.mutex);
    std::string line(text);
    for (const auto& secret : state.secrets)
        for (auto at = line.find(secret); at != std::string::npos; at = line.find(secret, at))
            line.replace(at, secret.size(), "***");
    if (policy == repeats::limited && !admit_repeat(state, line)) return;
    if (state.sink)
        state.sink(level, line);
    else
        write_stderr(level, line);
}

}  // namespace detail
}  // namespace kt
