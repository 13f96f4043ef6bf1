// Internal logging front end: fmt formatting, level filter, rate-limited repeats.
#pragma once

#include <fmt/format.h>

#include <kt/log.hpp>

namespace kt::detail {

bool log_enabled(log_level level) noexcept;
void log_line(log_level level, std::string_view text);

template <typename... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) {
    if (!log_enabled(level)) return;
    log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace kt::detail
