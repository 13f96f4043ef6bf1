// Captures what kafka-triggers and librdkafka log (still printing it), so a test can tell what
// happened inside the consumer.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <kt/log.hpp>

namespace kt_test {

/// Lines logged by kafka-triggers and librdkafka, kept (and still printed) so a scenario can tell
/// what its fault did.
class log_capture {
  public:
    static log_capture& instance() {
        // Immortal, like the library's own sink: librdkafka threads may log during exit.
        static log_capture& capture = *[] {
            auto* c = new log_capture;
            kt::set_log_sink(
                [c](kt::log_level level, std::string_view text) { c->add(level, text); });
            return c;
        }();
        return capture;
    }
    std::size_t mark() const {
        std::lock_guard lock(mutex_);
        return lines_.size();
    }
    /// Lines since `from` containing every one of `parts`.
    std::vector<std::string> since(std::size_t from, std::vector<std::string> parts) const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> found;
        for (std::size_t i = from; i < lines_.size(); ++i) {
            bool all = true;
            for (const auto& part : parts) all = all && lines_[i].find(part) != std::string::npos;
            if (all) found.push_back(lines_[i]);
        }
        return found;
    }

  private:
    void add(kt::log_level level, std::string_view text) {
        const char* name = level == kt::log_level::debug     ? "debug"
                           : level == kt::log_level::info    ? "info"
                           : level == kt::log_level::warning ? "warn"
                                                             : "error";
        std::fprintf(stderr, "[kt %s] %.*s\n", name, static_cast<int>(text.size()), text.data());
        std::lock_guard lock(mutex_);
        lines_.emplace_back(text);
    }
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
};

}  // namespace kt_test
