// Internal logging front end: fmt formatting, level filter, rate-limited repeats, redaction.
#pragma once

#include <string>

#include <fmt/format.h>

#include <kt/log.hpp>

namespace kt::detail {

bool log_enabled(log_level level) noexcept;
/// limited: a line identical to one printed in the last 10 s is counted, not printed (for
/// librdkafka's own lines, which repeat per broker and per retry).
enum class repeats { all, limited };
void log_line(log_level level, std::string_view text, repeats policy = repeats::all);
/// Names the calling thread for top -H, perf and gdb (at most 15 characters kept).
void name_this_thread(const std::string& name) noexcept;
/// Replaces `secret` (a secret property's value) by *** in every later log line.
void redact_in_logs(std::string_view secret);

template <typename... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) {
    if (!log_enabled(level)) return;
    log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace kt::detail
