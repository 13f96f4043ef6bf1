// Versions of kafka-triggers and of the librdkafka it runs on.
#pragma once

#include <string_view>

namespace kt {

/// kafka-triggers' version ("0.1.0").
std::string_view version() noexcept;

/// The version of the librdkafka loaded at run time (`rd_kafka_version_str()`, "2.14.2"); the
/// embedded cluster's brokers are the same library's mock cluster.
std::string_view librdkafka_version() noexcept;

}  // namespace kt
