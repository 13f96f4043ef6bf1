// JSON decoding for typed handlers (Boost.JSON).
#include <kt/typed.hpp>

#include <fmt/format.h>

namespace kt::decode {

boost::json::value json(const message& m) {
    boost::system::error_code ec;
    auto document = boost::json::parse(m.value(), ec);
    if (ec)
        throw decode_error(fmt::format("value of {}[{}]@{} is not valid JSON: {}", m.topic(),
                                       m.partition(), m.offset(), ec.message()));
    return document;
}

}  // namespace kt::decode
