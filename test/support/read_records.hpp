// Records of a topic as an independent client reads them (read_records.py, Debian's
// confluent-kafka), never through kafka-triggers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

namespace kt_test {

struct read_record {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::optional<std::string> key, value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;

    /// The last header named `name`; nullopt when there is none (or its value is null).
    std::optional<std::string> header(const std::string& name) const {
        std::optional<std::string> found;
        for (const auto& [n, v] : headers)
            if (n == name) found = v;
        return found;
    }
};

/// The first `count` records of `topic` from the beginning; throws if fewer arrive in 30 s.
inline std::vector<read_record> read_records(const std::string& bootstrap, const std::string& topic,
                                             std::size_t count) {
    const auto command = fmt::format("/usr/bin/python3 {}/read_records.py '{}' '{}' {}",
                                     KT_TEST_SUPPORT_DIR, bootstrap, topic, count);
    std::FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run " + command);
    auto text = [](const boost::json::value& v) -> std::optional<std::string> {
        if (v.is_null()) return std::nullopt;
        return std::string(v.as_string());
    };
    std::vector<read_record> records;
    std::string line;
    for (int c; (c = std::fgetc(pipe)) != EOF;) {
        if (c != '\n') {
            line.push_back(static_cast<char>(c));
            continue;
        }
        const auto object = boost::json::parse(line).as_object();
        line.clear();
        read_record r;
        r.partition = static_cast<std::int32_t>(object.at("partition").as_int64());
        r.offset = object.at("offset").as_int64();
        r.key = text(object.at("key"));
        r.value = text(object.at("value"));
        for (const auto& h : object.at("headers").as_array())
            r.headers.emplace_back(std::string(h.as_array().at(0).as_string()),
                                   text(h.as_array().at(1)));
        records.push_back(std::move(r));
    }
    if (::pclose(pipe) != 0 || records.size() < count)
        throw std::runtime_error(fmt::format("read_records.py read {} of {} records of {}",
                                             records.size(), count, topic));
    return records;
}

}  // namespace kt_test
