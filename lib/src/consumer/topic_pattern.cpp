#include "consumer/topic_pattern.hpp"

#include <array>
#include <stdexcept>

namespace kt::detail {

topic_pattern::topic_pattern(const std::string& pattern) : text_(pattern) {
    // The flags librdkafka's rd_regex_comp() uses.
    if (const int err = ::regcomp(&compiled_, pattern.c_str(), REG_EXTENDED | REG_NOSUB)) {
        std::array<char, 256> words{};
        ::regerror(err, &compiled_, words.data(), words.size());
        throw std::invalid_argument(words.data());
    }
}

}  // namespace kt::detail
