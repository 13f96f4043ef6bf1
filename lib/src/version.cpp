// kt::version and kt::librdkafka_version.
#include <kt/version.hpp>

#include <librdkafka/rdkafka.h>

// The oldest librdkafka whose behaviour the consumer relies on (no workaround for older bugs
// remains): pkg-config found it, and this catches an older rdkafka.h shadowing its headers.
static_assert(RD_KAFKA_VERSION >= KT_LIBRDKAFKA_MIN_HEX,
              "kafka-triggers needs librdkafka >= " KT_LIBRDKAFKA_MIN);

namespace kt {

std::string_view version() noexcept {
    return KT_VERSION;
}

std::string_view librdkafka_version() noexcept {
    return rd_kafka_version_str();
}

}  // namespace kt
