// The completion map's encoding. Metadata text: base64 of
//   magic 'k' | version 1 | varint base | varint sections |
//   per section: key (4 bytes, little-endian) | varint ranges | per range: varint gap, varint
//   length | CRC-32 of everything before it (4 bytes, little-endian)
// Gaps count from the end of the previous range (the first from base), so typical maps, a few
// runs close to the committed offset, take a byte or two per range.
#include "consumer/completion_map.hpp"

#include <algorithm>
#include <bit>
#include <limits>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <boost/crc.hpp>

namespace kt::detail {
namespace {

constexpr std::uint8_t magic = 'k';
constexpr std::uint8_t version = 1;
constexpr std::size_t crc_bytes = 4;
// Far beyond any real offset, so that decoded sums cannot overflow.
constexpr std::uint64_t offset_limit = std::uint64_t{1} << 62;

using bytes = std::vector<std::uint8_t>;

void put_varint(bytes& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<std::uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(bytes& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
    boost::crc_32_type crc;
    crc.process_bytes(data, size);
    return crc.checksum();
}

/// One section's bytes; `max_ranges` cuts it short.
bytes section_bytes(std::uint32_t key, const offset_ranges& ranges, std::int64_t base,
                    std::size_t max_ranges = std::numeric_limits<std::size_t>::max()) {
    bytes out;
    put_u32(out, key);
    const auto count = std::min(ranges.size(), max_ranges);
    put_varint(out, count);
    std::int64_t cursor = base;
    for (std::size_t i = 0; i < count; ++i) {
        put_varint(out, static_cast<std::uint64_t>(ranges[i].begin - cursor));
        put_varint(out, static_cast<std::uint64_t>(ranges[i].end - ranges[i].begin));
        cursor = ranges[i].end;
    }
    return out;
}

std::string to_text(std::int64_t base, const std::vector<bytes>& sections) {
    bytes payload{magic, version};
    put_varint(payload, static_cast<std::uint64_t>(base));
    put_varint(payload, sections.size());
    for (const auto& s : sections) payload.insert(payload.end(), s.begin(), s.end());
    put_u32(payload, crc32(payload.data(), payload.size()));
    std::string text(4 * ((payload.size() + 2) / 3), '\0');
    text.resize(static_cast<std::size_t>(
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), payload.data(),
                        static_cast<int>(payload.size()))));
    return text;
}

/// The base64 text length of a payload holding `section_bytes` bytes of sections.
std::size_t text_size(std::int64_t base, std::size_t sections, std::size_t section_bytes) {
    bytes header;
    put_varint(header, static_cast<std::uint64_t>(base));
    put_varint(header, sections);
    const auto payload = 2 + header.size() + section_bytes + crc_bytes;
    return 4 * ((payload + 2) / 3);
}

class reader {
  public:
    explicit reader(const bytes& data) : data_(data) {}
    bool varint(std::uint64_t& v) {
        v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (at_ >= end_) return false;
            const auto b = data_[at_++];
            v |= std::uint64_t{b & 0x7fu} << shift;
            if (!(b & 0x80)) return v < offset_limit;
        }
        return false;
    }
    bool u32(std::uint32_t& v) {
        if (end_ - at_ < 4) return false;
        v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t{data_[at_++]} << (8 * i);
        return true;
    }
    void limit(std::size_t end) { end_ = end; }
    bool at_end() const { return at_ == end_; }

  private:
    const bytes& data_;
    std::size_t at_ = 2;  // after magic and version
    std::size_t end_ = data_.size();
};

std::optional<completion_map> fail(std::string* why, std::string reason) {
    if (why) *why = std::move(reason);
    return std::nullopt;
}

}  // namespace

std::uint32_t trigger_key(std::string_view trigger_name) {
    std::uint32_t hash = 2166136261u;  // FNV-1a
    for (unsigned char c : trigger_name) hash = (hash ^ c) * 16777619u;
    return hash == every_trigger ? 1 : hash;
}

const offset_ranges* completion_map::find(std::uint32_t key) const {
    const offset_ranges* every = nullptr;
    for (const auto& [k, ranges] : sections) {
        if (k == key) return &ranges;
        if (k == every_trigger) every = &ranges;
    }
    return every;
}

bool completion_map::empty() const {
    return std::all_of(sections.begin(), sections.end(),
                       [](const auto& s) { return s.second.empty(); });
}

offset_ranges ranges_of(std::vector<std::int64_t> offsets) {
    std::sort(offsets.begin(), offsets.end());
    offset_ranges out;
    for (auto o : offsets) {
        if (!out.empty() && o <= out.back().end)
            out.back().end = std::max(out.back().end, o + 1);
        else
            out.push_back({o, o + 1});
    }
    return out;
}

offset_ranges intersect(const offset_ranges& a, const offset_ranges& b) {
    offset_ranges out;
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        const auto begin = std::max(a[i].begin, b[j].begin);
        const auto end = std::min(a[i].end, b[j].end);
        if (begin < end) out.push_back({begin, end});
        (a[i].end < b[j].end) ? ++i : ++j;
    }
    return out;
}

offset_ranges unite(const offset_ranges& a, const offset_ranges& b) {
    offset_ranges out;
    std::size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        const bool from_a = j == b.size() || (i < a.size() && a[i].begin < b[j].begin);
        const auto& next = from_a ? a[i++] : b[j++];
        if (!out.empty() && out.back().end >= next.begin)
            out.back().end = std::max(out.back().end, next.end);
        else
            out.push_back(next);
    }
    return out;
}

encoded_map encode(const completion_map& map, std::size_t budget) {
    if (map.empty()) return {};
    std::vector<std::uint32_t> keys;
    for (const auto& section : map.sections) keys.push_back(section.first);
    std::sort(keys.begin(), keys.end());
    // Two triggers whose names hash alike would read each other's section.
    const bool keys_unique = std::adjacent_find(keys.begin(), keys.end()) == keys.end();
    // An empty section ("finished nothing") can be left out, unless a section for every trigger
    // would then answer for its trigger (found by fuzzing).
    const bool has_every = std::binary_search(keys.begin(), keys.end(), every_trigger);
    std::vector<bytes> sections;
    std::size_t size = 0;
    for (const auto& [key, ranges] : map.sections) {
        if ((ranges.empty() && !has_every) || !keys_unique) continue;
        sections.push_back(section_bytes(key, ranges, map.base));
        size += sections.back().size();
    }
    if (keys_unique && text_size(map.base, sections.size(), size) <= budget)
        return {to_text(map.base, sections), true, true};

    // The sections do not fit: what every trigger finished, as much of it as fits.
    auto common = map.sections.front().second;
    for (std::size_t i = 1; i < map.sections.size(); ++i)
        common = intersect(common, map.sections[i].second);
    auto every = section_bytes(every_trigger, common, map.base);
    if (text_size(map.base, 1, every.size()) <= budget)
        return {to_text(map.base, {every}), true, false};
    std::size_t fit = 0;  // ranges that fit, found by halving
    for (std::size_t step = std::bit_floor(common.size()); step > 0; step /= 2)
        if (fit + step <= common.size() &&
            text_size(map.base, 1,
                      section_bytes(every_trigger, common, map.base, fit + step).size()) <= budget)
            fit += step;
    if (fit == 0) return {{}, false, false};
    return {to_text(map.base, {section_bytes(every_trigger, common, map.base, fit)}), false, false};
}

std::optional<completion_map> decode(std::string_view metadata, std::int64_t committed,
                                     std::string* why) {
    if (metadata.empty()) return completion_map{committed, {}};
    if (metadata.size() % 4 != 0) return fail(why, "not base64");
    bytes data(metadata.size() / 4 * 3);
    const int decoded =
        EVP_DecodeBlock(data.data(), reinterpret_cast<const unsigned char*>(metadata.data()),
                        static_cast<int>(metadata.size()));
    if (decoded < 0) return fail(why, "not base64");
    // EVP_DecodeBlock counts the padding as zero bytes.
    const auto padding = std::count(metadata.end() - 2, metadata.end(), '=');
    data.resize(static_cast<std::size_t>(decoded - padding));
    if (data.size() < 2 + crc_bytes || data[0] != magic)
        return fail(why, "not a kafka-triggers completion map");
    if (data[1] != version)
        return fail(
            why, fmt::format("completion map version {} (this build reads {})", data[1], version));
    const auto body = data.size() - crc_bytes;
    std::uint32_t stored_crc = 0;
    for (std::size_t i = 0; i < crc_bytes; ++i)
        stored_crc |= std::uint32_t{data[body + i]} << (8 * i);
    if (stored_crc != crc32(data.data(), body))
        return fail(why, "completion map checksum mismatch");

    reader in(data);
    in.limit(body);
    std::uint64_t base = 0, sections = 0;
    if (!in.varint(base) || !in.varint(sections)) return fail(why, "completion map truncated");
    if (static_cast<std::int64_t>(base) != committed)
        return fail(why, fmt::format("completion map written for offset {}, committed {}", base,
                                     committed));
    completion_map map{committed, {}};
    for (std::uint64_t s = 0; s < sections; ++s) {
        std::uint32_t key = 0;
        std::uint64_t count = 0;
        if (!in.u32(key) || !in.varint(count)) return fail(why, "completion map truncated");
        offset_ranges ranges;
        std::uint64_t cursor = base;
        for (std::uint64_t r = 0; r < count; ++r) {
            std::uint64_t gap = 0, length = 0;
            if (!in.varint(gap) || !in.varint(length)) return fail(why, "completion map truncated");
            // Ranges must be disjoint and not adjacent (but the first may start at base).
            if (length == 0 || (r > 0 && gap == 0) || cursor + gap + length >= offset_limit)
                return fail(why, "completion map malformed");
            ranges.push_back({static_cast<std::int64_t>(cursor + gap),
                              static_cast<std::int64_t>(cursor + gap + length)});
            cursor += gap + length;
        }
        map.sections.emplace_back(key, std::move(ranges));
    }
    if (!in.at_end()) return fail(why, "completion map has trailing bytes");
    return map;
}

}  // namespace kt::detail
