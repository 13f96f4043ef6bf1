// Logging hooks: kafka-triggers and librdkafka log through one sink, secrets never included.
#pragma once

#include <functional>
#include <string_view>

namespace kt {

enum class log_level { debug, info, warning, error, off };

/// Messages below `level` are dropped (default: info, or $KT_LOG_LEVEL). Thread-safe.
void set_log_level(log_level level) noexcept;
log_level current_log_level() noexcept;
/// Replaces the sink (default: one line per message on stderr). Thread-safe; the sink is called
/// from any thread, including librdkafka's.
void set_log_sink(std::function<void(log_level, std::string_view)> sink);

}  // namespace kt
