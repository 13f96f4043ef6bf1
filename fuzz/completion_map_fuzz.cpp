// libFuzzer target for the completion map decoder. The first input byte picks a property:
//  0 (raw): any metadata decodes or is refused, never crashes or hangs, and what is accepted is a
//    well-formed map (sorted, disjoint, non-adjacent, non-empty ranges at or above the committed
//    offset) that encodes back to the same map;
//  1 (framed): the rest is a payload between our magic/version and a valid CRC-32, so the section
//    parser behind the checksum gets fuzzed too; same checks;
//  2 (damaged): the rest builds a valid map, one character of its text is changed: it decodes to
//    the map as written (a base64 character whose change the decoder cannot see) or not at all — a
//    damaged map never makes a trigger skip an offset it did not finish.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>
#include <openssl/evp.h>
#include <boost/crc.hpp>

#include "consumer/completion_map.hpp"

namespace kd = kt::detail;

namespace {

void require(bool condition, const char* what) {
    if (condition) return;
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
}

void print(const char* label, const kd::completion_map& map) {
    std::fprintf(stderr, "%s: base %lld", label, static_cast<long long>(map.base));
    for (const auto& [key, ranges] : map.sections) {
        std::fprintf(stderr, " | %08x:", key);
        for (const auto& r : ranges)
            std::fprintf(stderr, " [%lld,%lld)", static_cast<long long>(r.begin),
                         static_cast<long long>(r.end));
    }
    std::fprintf(stderr, "\n");
}

// The offsets a trigger with `key` skips after reading `map`.
kd::offset_ranges skipped_by(const kd::completion_map& map, std::uint32_t key) {
    const auto* ranges = map.find(key);
    return ranges ? *ranges : kd::offset_ranges{};
}

void check_well_formed(const kd::completion_map& map, std::int64_t committed) {
    require(map.base == committed, "base is the committed offset");
    for (const auto& [key, ranges] : map.sections) {
        for (std::size_t i = 0; i < ranges.size(); ++i) {
            require(ranges[i].begin >= committed, "ranges start at or above the committed offset");
            require(ranges[i].begin < ranges[i].end, "ranges are not empty");
            require(i == 0 || ranges[i].begin > ranges[i - 1].end, "ranges sorted, not adjacent");
        }
    }
    // What we accept encodes back to a map that skips no more for any trigger, and exactly as
    // much when its keys are distinct trigger keys (the maps the ledger encodes).
    const auto again = kd::decode(kd::encode(map, 1 << 20).text, committed);
    require(again.has_value(), "a decoded map encodes to decodable text");
    bool exact = true;
    for (const auto& section : map.sections) {
        const auto key = section.first;
        exact = exact && key != kd::every_trigger &&
                std::count_if(map.sections.begin(), map.sections.end(),
                              [key](const auto& s) { return s.first == key; }) == 1;
    }
    for (const auto& section : map.sections) {
        const auto before = skipped_by(map, section.first);
        const auto after = skipped_by(*again, section.first);
        if (kd::intersect(after, before) != after) {
            print("decoded", map);
            print("again", *again);
            require(false, "encode and decode never add a skip");
        }
        require(!exact || after == before, "encode and decode keep a trigger map exactly");
    }
}

void decode_and_check(std::string_view text, std::int64_t committed) {
    if (auto map = kd::decode(text, committed)) check_well_formed(*map, committed);
}

std::string base64(const std::string& bytes) {
    std::string text(4 * ((bytes.size() + 2) / 3), '\0');
    text.resize(static_cast<std::size_t>(EVP_EncodeBlock(
        reinterpret_cast<unsigned char*>(text.data()),
        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()))));
    return text;
}

// The base a payload starts with (a varint), so decode() gets past the committed-offset check.
std::int64_t leading_varint(std::string_view payload) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < payload.size() && i < 9; ++i) {
        v |= std::uint64_t{static_cast<std::uint8_t>(payload[i]) & 0x7fu} << (7 * i);
        if (!(static_cast<std::uint8_t>(payload[i]) & 0x80)) break;
    }
    return static_cast<std::int64_t>(v);
}

void framed(const std::string& payload) {
    std::string bytes = "k\x01" + payload;
    boost::crc_32_type crc;
    crc.process_bytes(bytes.data(), bytes.size());
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(crc.checksum() >> (8 * i)));
    decode_and_check(base64(bytes), leading_varint(payload));
}

void damaged(FuzzedDataProvider& in) {
    kd::completion_map map{in.ConsumeIntegralInRange<std::int64_t>(0, std::int64_t{1} << 40), {}};
    const auto sections = in.ConsumeIntegralInRange<int>(1, 4);
    for (int s = 0; s < sections; ++s) {
        kd::offset_ranges ranges;
        std::int64_t cursor = map.base;
        const auto count = in.ConsumeIntegralInRange<int>(1, 20);
        for (int r = 0; r < count; ++r) {
            const auto begin = cursor + in.ConsumeIntegralInRange<std::int64_t>(r ? 1 : 0, 1000);
            cursor = begin + in.ConsumeIntegralInRange<std::int64_t>(1, 1000);
            ranges.push_back({begin, cursor});
        }
        map.sections.emplace_back(in.ConsumeIntegral<std::uint32_t>() | 1u, std::move(ranges));
    }
    const auto original = kd::encode(map, 1 << 20).text;
    auto text = original;
    const auto at = in.ConsumeIntegralInRange<std::size_t>(0, text.size() - 1);
    const auto with = in.ConsumeIntegral<char>();
    if (text[at] == with) return;
    text[at] = with;
    // As written (duplicate keys, which the ledger never makes, are written as the intersection).
    const auto written = kd::decode(original, map.base);
    require(written.has_value(), "an encoded map decodes");
    if (auto decoded = kd::decode(text, map.base);
        decoded && decoded->sections != written->sections) {
        std::fprintf(stderr, "encoded: %s\ndamaged: %s (at %zu)\n", original.c_str(), text.c_str(),
                     at);
        require(false, "a damaged map decodes to itself or not at all");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
        case 0: {
            const auto committed = in.ConsumeIntegralInRange<std::int64_t>(-1, 1 << 20);
            decode_and_check(in.ConsumeRemainingBytesAsString(), committed);
            break;
        }
        case 1:
            framed(in.ConsumeRemainingBytesAsString());
            break;
        default:
            damaged(in);
    }
    return 0;
}
