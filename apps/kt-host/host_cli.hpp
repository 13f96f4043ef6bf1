// kt-host's exit codes and the first contact with the brokers, shared by its commands.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include <kt/admin.hpp>

namespace host_cli {

// Exit codes (--help lists them).
constexpr int exit_failure = 1;      // anything else that went wrong
constexpr int exit_usage = 2;        // invalid options, properties or --config file
constexpr int exit_unreachable = 3;  // no bootstrap server answered
constexpr auto reach_timeout = std::chrono::seconds(10);  // for the bootstrap servers to answer

/// No bootstrap server answered within reach_timeout (exit code 3).
struct unreachable_kafka : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One line when no bootstrap server answers, rather than librdkafka's retries.
inline void require_reachable(const kt::consumer_config& config) {
    const auto probe = kt::probe_brokers(config, reach_timeout);
    if (probe.reachable) return;
    throw unreachable_kafka(fmt::format(
        "cannot reach Kafka at {} within {} s: {}", config.get("bootstrap.servers"),
        reach_timeout.count(), probe.reason.empty() ? probe.error.message() : probe.reason));
}

}  // namespace host_cli
