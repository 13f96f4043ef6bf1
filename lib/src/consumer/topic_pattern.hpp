// A trigger's topic pattern ("^orders\..*"): matched as librdkafka matches the regex subscription
// it is part of (POSIX extended regular expressions, regcomp/regexec, unanchored but for the
// leading '^').
#pragma once

#include <regex.h>

#include <string>
#include <string_view>

namespace kt::detail {

class topic_pattern {
  public:
    /// A topic that starts with '^' is a pattern (librdkafka's rule for subscriptions).
    static bool is_pattern(std::string_view topic) noexcept {
        return !topic.empty() && topic.front() == '^';
    }
    /// Throws std::invalid_argument with regerror()'s words when `pattern` does not compile.
    explicit topic_pattern(const std::string& pattern);
    ~topic_pattern() { ::regfree(&compiled_); }
    topic_pattern(const topic_pattern&) = delete;
    topic_pattern& operator=(const topic_pattern&) = delete;

    bool matches(const std::string& topic) const noexcept {
        return ::regexec(&compiled_, topic.c_str(), 0, nullptr, 0) == 0;
    }
    const std::string& text() const noexcept { return text_; }

  private:
    std::string text_;
    regex_t compiled_;
};

}  // namespace kt::detail
