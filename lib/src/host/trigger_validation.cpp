#include "host/trigger_validation.hpp"

#include <fmt/format.h>

namespace kt::detail {

std::optional<option_problem> find_problem(const trigger_options& o,
                                           std::optional<handler_kind> kind) {
    if (o.name.empty()) return option_problem{"name", "a trigger needs a name"};
    if (o.topic.empty()) return option_problem{"topic", "a trigger needs a topic"};
    if (o.delivery == delivery_guarantee::exactly_once && kind == handler_kind::batch)
        return option_problem{
            "delivery", "batch triggers support at_least_once and at_most_once, not exactly_once"};
    if (o.delivery == delivery_guarantee::exactly_once && kind && kind != handler_kind::transform)
        return option_problem{"delivery",
                              "exactly_once needs a transform handler (its output joins the "
                              "offsets' transaction)"};
    if (o.key_of && o.ordering != ordering::key)
        return option_problem{"key_of", "a key extractor orders messages only under ordering key"};
    if (o.retry.max_backoff < o.retry.initial_backoff)
        return option_problem{
            "retry.max_backoff",
            fmt::format("max_backoff ({} ms) is below initial_backoff ({} ms)",
                        o.retry.max_backoff.count(), o.retry.initial_backoff.count())};
    if (kind != handler_kind::pull && o.dead_letter.topic == o.topic)
        return option_problem{"dead_letter.topic",
                              "the dead letter topic cannot be the trigger's own topic"};
    return std::nullopt;
}

}  // namespace kt::detail
