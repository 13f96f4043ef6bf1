// A group's committed offsets as the broker holds them, read by an independent client
// (broker_offsets.py, Debian's confluent-kafka), never through kafka-triggers' own bookkeeping.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace kt_test {

struct partition_offsets {
    std::int64_t committed = -1;  // -1: the group committed nothing for the partition
    std::int64_t high_watermark = 0;
};

/// partition → (committed, high watermark) of `topic` for `group`; throws if the client fails.
inline std::map<std::int32_t, partition_offsets> broker_offsets(const std::string& bootstrap,
                                                                const std::string& group,
                                                                const std::string& topic) {
    const auto command = fmt::format("/usr/bin/python3 {}/broker_offsets.py '{}' '{}' '{}'",
                                     KT_TEST_SUPPORT_DIR, bootstrap, group, topic);
    std::FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run " + command);
    std::map<std::int32_t, partition_offsets> result;
    int partition = 0;
    long long committed = 0, high = 0;
    while (std::fscanf(pipe, "%d %lld %lld", &partition, &committed, &high) == 3)
        result[partition] = {committed, high};
    if (::pclose(pipe) != 0 || result.empty())
        throw std::runtime_error("broker_offsets.py failed for group " + group);
    return result;
}

}  // namespace kt_test
