// The rules a trigger's options must meet, written once: trigger_host::add_trigger and the
// configuration file both ask here (and name the field in their own terms).
#pragma once

#include <optional>
#include <string>

#include <kt/options.hpp>

namespace kt::detail {

/// What a trigger runs, when known (the configuration file knows only whether it batches).
enum class handler_kind { plain, transform, batch, pull };

struct option_problem {
    std::string field;    ///< in trigger_options terms: "topic", "retry.max_backoff", ...
    std::string message;  ///< what is wrong, without the trigger's name
};

/// The first rule `options` breaks for a trigger of `kind` (unknown: nullopt), or nullopt.
std::optional<option_problem> find_problem(const trigger_options& options,
                                           std::optional<handler_kind> kind);

}  // namespace kt::detail
