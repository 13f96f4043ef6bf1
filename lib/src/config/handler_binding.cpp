// Handlers bound to a configuration's triggers by name: handler_registry, check and add_triggers.
#include <kt/config_file.hpp>

#include <utility>
#include <variant>

#include <fmt/format.h>

#include <kt/errors.hpp>

#include "config/json_reader.hpp"
#include "host/trigger_validation.hpp"

namespace kt {
namespace {
using detail::config::fail;
using detail::config::join;

/// Handlers bound to one trigger each, before any is added.
bound_handler resolve_handler(const configured_trigger& t, const handler_registry& handlers) {
    const auto path = fmt::format("$.triggers[{}].handler", t.index);
    const auto* make = handlers.find(t.handler);
    if (!make)
        fail(path,
             fmt::format("unknown handler \"{}\" (known: {})", t.handler, join(handlers.names())));
    auto bound = (*make)(t);
    const bool present = std::visit([](const auto& h) { return static_cast<bool>(h); }, bound);
    if (!present) fail(path, fmt::format("handler \"{}\" is empty", t.handler));
    if (t.batch && !std::holds_alternative<batch_handler>(bound))
        fail(fmt::format("$.triggers[{}].batch", t.index),
             fmt::format("handler \"{}\" is not a batch handler", t.handler));
    // The option rules that depend on the handler's kind are host/trigger_validation's.
    const auto kind = std::holds_alternative<batch_handler>(bound) ? detail::handler_kind::batch
                      : std::holds_alternative<transform_handler>(bound)
                          ? detail::handler_kind::transform
                          : detail::handler_kind::plain;
    if (auto problem = detail::find_problem(t.options, kind))
        fail(path, fmt::format("handler \"{}\": {}", t.handler, problem->message));
    return bound;
}

void add_bound(trigger_host& host, const configured_trigger& t, bound_handler bound) {
    try {
        if (auto* batch = std::get_if<batch_handler>(&bound))
            host.add_batch_trigger(t.options, t.batch.value_or(batch_options{}), std::move(*batch));
        else if (auto* transform = std::get_if<transform_handler>(&bound))
            host.add_trigger(t.options, std::move(*transform));
        else
            host.add_trigger(t.options, std::get<handler>(std::move(bound)));
    } catch (const config_error& e) {  // the host's messages hold no secret
        const auto path = fmt::format("$.triggers[{}]", t.index);
        throw config_error(path, fmt::format("config: {}: {}", path, e.what()));
    }
}

handler_registry::factory always(bound_handler h) {
    return [h = std::move(h)](const configured_trigger&) { return h; };
}

}  // namespace

handler_registry& handler_registry::add(std::string name, handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_transform(std::string name, transform_handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_batch(std::string name, batch_handler h) {
    return add_factory(std::move(name), always(std::move(h)));
}

handler_registry& handler_registry::add_factory(std::string name, factory make) {
    factories_[std::move(name)] = std::move(make);
    return *this;
}

const handler_registry::factory* handler_registry::find(std::string_view name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> handler_registry::names() const {
    std::vector<std::string> names;
    for (const auto& [name, make] : factories_) names.push_back(name);
    return names;
}

void check_handlers(const app_config& config, const handler_registry& handlers) {
    for (const auto& t : config.triggers) (void)resolve_handler(t, handlers);
}

void add_triggers(trigger_host& host, const app_config& config, const handler_registry& handlers) {
    std::vector<bound_handler> bound;
    for (const auto& t : config.triggers) bound.push_back(resolve_handler(t, handlers));
    for (std::size_t i = 0; i < config.triggers.size(); ++i)
        add_bound(host, config.triggers[i], std::move(bound[i]));
}

}  // namespace kt
