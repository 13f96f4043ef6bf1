// kt::version and kt::librdkafka_version.
#include <kt/version.hpp>

#include <librdkafka/rdkafka.h>

// The oldest librdkafka whose behaviour the consumer relies on (no workaround for older bugs
// remains); CMake checks the same version through pkg-config.
static_assert(RD_KAFKA_VERSION >= 0x020e02ff, "kafka-triggers needs librdkafka >= 2.14.2");

namespace kt {

std::string_view version() noexcept {
    return KT_VERSION;
}

std::string_view librdkafka_version() noexcept {
    return rd_kafka_version_str();
}

}  // namespace kt
