// Log sink, level filter and suppression of identical lines repeated in a burst.
#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

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

struct sink_state {
    std::mutex mutex;
    std::function<void(log_level, std::string_view)> sink;
    std::string last_line;
    unsigned repeats = 0;
    std::chrono::steady_clock::time_point last_time;
};

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

void log_line(log_level level, std::string_view text) {
    auto& state = sink();
    std::lock_guard lock(state.mutex);
    const auto now = std::chrono::steady_clock::now();
    // A line identical to the previous one within a second is counted, not printed again.
    if (text == state.last_line && now - state.last_time < std::chrono::seconds(1)) {
        ++state.repeats;
        return;
    }
    auto emit = [&](log_level l, std::string_view t) {
        if (state.sink)
            state.sink(l, t);
        else
            write_stderr(l, t);
    };
    if (state.repeats > 0)
        emit(level, fmt::format("(previous line repeated {} more times)", state.repeats));
    state.repeats = 0;
    state.last_line.assign(text);
    state.last_time = now;
    emit(level, text);
}

}  // namespace detail
}  // namespace kt
