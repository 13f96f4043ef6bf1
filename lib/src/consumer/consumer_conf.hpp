// The librdkafka config a shared consumer runs with: the user's, checked, plus what
// kafka-triggers manages (manual offset stores and commits, cooperative assignment, statistics).
#pragma once

#include <kt/config.hpp>
#include <kt/options.hpp>

#include "rdkafka_handles.hpp"

namespace kt::detail {

/// Throws kt::config_error naming the property when `config` lacks what a consumer needs or sets
/// what kafka-triggers manages to something else.
conf_ptr consumer_conf(const consumer_config& config, const host_options& options);

}  // namespace kt::detail
