// Typed handlers: decode a message's value before the handler runs; a failed decode is a
// kt::decode_error, which is never retried and goes to the dead letter topic.
#pragma once

#include <concepts>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include <kt/message.hpp>
#include <kt/trigger_host.hpp>

namespace kt {

/// A message whose value cannot be decoded. A permanent_error: no retries, dead-lettered.
class decode_error : public permanent_error {
  public:
    using permanent_error::permanent_error;
};

namespace decode {

/// The value as a string (a null value decodes to an empty string).
inline std::string string(const message& m) {
    return std::string(m.value());
}

/// The value parsed as JSON; throws kt::decode_error naming the position of the parse error.
boost::json::value json(const message& m);

/// The value parsed as JSON and converted with boost::json::value_to<T> (user types provide
/// tag_invoke); throws kt::decode_error when parsing or converting fails.
template <typename T>
T json_as(const message& m) {
    auto document = json(m);
    try {
        return boost::json::value_to<T>(document);
    } catch (const std::exception& e) {
        throw decode_error("JSON of " + std::string(m.topic()) + "@" + std::to_string(m.offset()) +
                           " does not fit the expected type: " + e.what());
    }
}

}  // namespace decode

/// Wraps `h`, a coroutine taking (const T&, const kt::message&), into a kt::handler that decodes
/// each message with `decoder` first. Any exception from the decoder becomes a kt::decode_error.
///   host.add_trigger(opts, kt::typed<order>(kt::decode::json_as<order>, handle_order));
template <typename T, typename Decoder, typename Handler>
requires std::invocable<Decoder, const message&> &&
    std::invocable<Handler, const T&, const message&>
        handler typed(Decoder decoder, Handler h) {
    return [decoder = std::move(decoder),
            h = std::move(h)](const message& m) -> boost::asio::awaitable<void> {
        T value = [&]() -> T {
            try {
                return decoder(m);
            } catch (const decode_error&) {
                throw;
            } catch (const std::exception& e) {
                throw decode_error(std::string("cannot decode ") + std::string(m.topic()) + "@" +
                                   std::to_string(m.offset()) + ": " + e.what());
            }
        }();
        co_await h(value, m);
    };
}

}  // namespace kt
