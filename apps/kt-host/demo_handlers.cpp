// kt-host's demo handler work and the named handlers of --config files.
#include "demo_handlers.hpp"

#include <charconv>
#include <chrono>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

namespace asio = boost::asio;
namespace json = boost::json;

output_file::output_file(const std::string& path) {
    if (path.empty()) return;
    file_.open(path, std::ios::app);
    if (!file_) throw std::runtime_error("cannot open --output file " + path);
}

output_file::~output_file() {
    if (file_.is_open()) file_.flush();
}

void output_file::record(const std::string& trigger, const kt::message& m) {
    if (!file_.is_open()) return;
    json::object line{{"trigger", trigger},
                      {"topic", m.topic()},
                      {"partition", m.partition()},
                      {"offset", m.offset()}};
    line["key"] = m.has_key() ? json::value(m.key()) : json::value(nullptr);
    // When it finished (wall clock, ms): crash tests compare it with the moment of a kill.
    line["at_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    const auto text = json::serialize(line);
    std::lock_guard lock(mutex_);
    // Flushed per line: a record must survive kill -9 once its offset may be committed.
    file_ << text << '\n' << std::flush;
}

asio::awaitable<void> demo_work::operator()(const std::string& trigger, const kt::message& m,
                                            kt::producer* out, const std::string& out_topic) const {
    if (sleep.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, sleep);
        co_await timer.async_wait(asio::use_awaitable);
    }
    if (fail_every > 0) {
        // A retry topic's record fails as its original did: by the offset it was first read at.
        // (Only then: librdkafka parses a message's headers on first access, ~900 instructions.)
        const auto original = m.header("kt-original-offset");
        const long long offset = original ? std::stoll(std::string(*original)) : m.offset();
        if (offset % fail_every == 0)
            throw std::runtime_error(
                fmt::format("--fail-every {}: offset {} fails", fail_every, offset));
    }
    if (out) {
        kt::record copy{.topic = out_topic,
                        .headers = {{"kt-source-partition", std::to_string(m.partition())},
                                    {"kt-source-offset", std::to_string(m.offset())}}};
        if (m.has_key()) copy.key = std::string(m.key());
        if (m.has_value()) copy.value = std::string(m.value());
        co_await out->send(std::move(copy));
    }
    output.record(trigger, m);
}

std::string copy_topic(const std::string& output_topic, const std::string& source_topic) {
    return output_topic.empty() ? source_topic + ".out" : output_topic;
}

namespace {

/// The <ms> of a "sleep:<ms>" handler name.
std::optional<long> sleep_of(const std::string& handler) {
    constexpr std::string_view prefix = "sleep:";
    if (!handler.starts_with(prefix)) return std::nullopt;
    long ms = -1;
    const auto* end = handler.data() + handler.size();
    const auto [rest, ec] = std::from_chars(handler.data() + prefix.size(), end, ms);
    if (ec != std::errc{} || rest != end || ms < 0) return std::nullopt;
    return ms;
}

kt::handler_registry::factory record(demo_work work) {
    return [work](const kt::configured_trigger& t) -> kt::bound_handler {
        return kt::handler([work, name = t.options.name](const kt::message& m) {
            return work(name, m, nullptr, demo_work::no_topic);
        });
    };
}

}  // namespace

kt::handler_registry demo_handlers(const kt::app_config& config, const demo_work& work,
                                   const std::string& output_topic) {
    kt::handler_registry handlers;
    handlers.add_factory("record", record(work));
    handlers.add_factory("copy", [work, output_topic](const kt::configured_trigger& t) {
        return kt::bound_handler{kt::transform_handler(
            [work, name = t.options.name, to = copy_topic(output_topic, t.options.topic)](
                const kt::message& m, kt::producer& out) { return work(name, m, &out, to); })};
    });
    handlers.add_factory("batch", [work](const kt::configured_trigger& t) {
        return kt::bound_handler{
            kt::batch_handler([work, name = t.options.name](
                                  std::span<const kt::message> batch) -> asio::awaitable<void> {
                for (const auto& m : batch) co_await work(name, m, nullptr, {});
            })};
    });
    for (const auto& t : config.triggers) {
        if (const auto ms = sleep_of(t.handler)) {
            auto slower = work;
            slower.sleep = std::chrono::milliseconds(*ms);
            handlers.add_factory(t.handler, record(slower));
        }
    }
    return handlers;
}
