// kt/trace.hpp: W3C traceparent and tracestate parsing, formatting, child contexts, and the
// trace headers a record gets.
#define BOOST_TEST_MODULE trace
#include <boost/test/unit_test.hpp>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <kt/producer.hpp>
#include <kt/trace.hpp>

namespace {

constexpr std::string_view valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string with(std::string text, std::size_t at, std::string_view part) {
    text.replace(at, part.size(), part);
    return text;
}

std::string header_of(const kt::record& r, const std::string& name) {
    for (const auto& h : r.headers)
        if (h.name == name) return h.value.value_or("<null>");
    return "<none>";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_valid_traceparent_gives_its_ids_and_flags) {
    const auto context = kt::parse_trace_context(valid);
    BOOST_TEST_REQUIRE(context.has_value());
    BOOST_TEST(context->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
    BOOST_TEST(context->span_id_hex() == "00f067aa0ba902b7");
    BOOST_TEST(context->flags == 1);
    BOOST_TEST(context->sampled());
    BOOST_TEST(context->trace_state.empty());
    BOOST_TEST(context->traceparent() == valid);
    const auto unsampled = kt::parse_trace_context(with(std::string(valid), 53, "00"));
    BOOST_TEST_REQUIRE(unsampled.has_value());
    BOOST_TEST(!unsampled->sampled());
}

BOOST_AUTO_TEST_CASE(upper_case_or_non_hex_digits_are_invalid_in_every_field) {
    const std::string base(valid);
    for (std::size_t at : {0u, 3u, 20u, 34u, 36u, 51u, 53u, 54u}) {
        BOOST_TEST(!kt::parse_trace_context(with(base, at, "A")).has_value(),
                   "upper case at " << at);
        BOOST_TEST(!kt::parse_trace_context(with(base, at, "g")).has_value(), "non-hex at " << at);
        BOOST_TEST(!kt::parse_trace_context(with(base, at, " ")).has_value(), "blank at " << at);
    }
    BOOST_TEST(!kt::parse_trace_context("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")
                    .has_value());
}

BOOST_AUTO_TEST_CASE(all_zero_trace_or_span_ids_are_invalid) {
    BOOST_TEST(!kt::parse_trace_context("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
                    .has_value());
    BOOST_TEST(!kt::parse_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")
                    .has_value());
}

BOOST_AUTO_TEST_CASE(wrong_lengths_and_separators_are_invalid) {
    const std::string base(valid);
    BOOST_TEST(!kt::parse_trace_context("").has_value());
    BOOST_TEST(!kt::parse_trace_context(base.substr(0, 54)).has_value());
    BOOST_TEST(!kt::parse_trace_context(base + "-").has_value());  // version 00: nothing more
    BOOST_TEST(!kt::parse_trace_context(base + "0").has_value());
    BOOST_TEST(!kt::parse_trace_context(" " + base).has_value());
    // A trace id one digit short, the span id one longer: same total length, fields misplaced.
    BOOST_TEST(!kt::parse_trace_context("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01")
                    .has_value());
    for (std::size_t at : {2u, 35u, 52u})
        BOOST_TEST(!kt::parse_trace_context(with(base, at, "_")).has_value(), "separator " << at);
    BOOST_TEST(!kt::parse_trace_context("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                    .has_value());
}

BOOST_AUTO_TEST_CASE(version_ff_is_invalid_and_later_versions_are_read_by_their_first_fields) {
    const std::string base(valid);
    BOOST_TEST(!kt::parse_trace_context(with(base, 0, "ff")).has_value());
    const auto future = kt::parse_trace_context(with(base, 0, "cc"));
    BOOST_TEST_REQUIRE(future.has_value());
    BOOST_TEST(future->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
    // Fields a later version adds follow another '-'; a child is written as version 00.
    const auto extended = kt::parse_trace_context(with(base, 0, "01") + "-what-comes-later");
    BOOST_TEST_REQUIRE(extended.has_value());
    BOOST_TEST(extended->span_id_hex() == "00f067aa0ba902b7");
    BOOST_TEST(extended->traceparent() == valid);
    BOOST_TEST(!kt::parse_trace_context(with(base, 0, "01") + "x-later").has_value());
    BOOST_TEST(!kt::parse_trace_context(with(base, 0, "01").substr(0, 54)).has_value());
}

BOOST_AUTO_TEST_CASE(tracestate_is_kept_normalised_and_dropped_alone_when_malformed) {
    const auto kept = kt::parse_trace_context(valid, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
    BOOST_TEST_REQUIRE(kept.has_value());
    BOOST_TEST(kept->trace_state == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    const auto tenant = kt::parse_trace_context(valid, "acme@vendor=x,,  ");
    BOOST_TEST_REQUIRE(tenant.has_value());
    BOOST_TEST(tenant->trace_state == "acme@vendor=x");
    for (std::string_view bad : {"Rojo=1", "rojo", "rojo=", "rojo=a,b", "=1", "rojo=a=b", "1rojo=x",
                                 "a@=x", "rojo=\x7f"}) {
        const auto context = kt::parse_trace_context(valid, bad);
        BOOST_TEST_REQUIRE(context.has_value(), "traceparent kept beside '" << bad << "'");
        BOOST_TEST(context->trace_state.empty(), "tracestate '" << bad << "' dropped");
    }
}

BOOST_AUTO_TEST_CASE(tracestate_allows_32_members_and_is_cut_to_512_bytes_as_the_spec_says) {
    std::vector<std::string> members;
    for (int i = 0; i < 32; ++i) members.push_back(fmt::format("k{}=v", i));
    const auto thirty_two =
        kt::parse_trace_context(valid, fmt::format("{}", fmt::join(members, ",")));
    BOOST_TEST_REQUIRE(thirty_two.has_value());
    BOOST_TEST(thirty_two->trace_state == fmt::format("{}", fmt::join(members, ",")));
    members.push_back("k32=v");
    const auto thirty_three =
        kt::parse_trace_context(valid, fmt::format("{}", fmt::join(members, ",")));
    BOOST_TEST_REQUIRE(thirty_three.has_value());
    BOOST_TEST(thirty_three->trace_state.empty());

    // Over 512 bytes: members longer than 128 go first, then members from the end.
    const std::string long_member = "long=" + std::string(200, 'x');
    std::vector<std::string> big{fmt::format("m0={}", std::string(100, 'y')), long_member};
    for (int i = 1; i < 6; ++i) big.push_back(fmt::format("m{}={}", i, std::string(100, 'y')));
    const auto cut = kt::parse_trace_context(valid, fmt::format("{}", fmt::join(big, ",")));
    BOOST_TEST_REQUIRE(cut.has_value());
    BOOST_TEST(cut->trace_state.size() <= kt::max_trace_state_size);
    BOOST_TEST(cut->trace_state.find("long=") == std::string::npos);
    BOOST_TEST(cut->trace_state.starts_with(big[0] + "," + big[2]));
    BOOST_TEST(cut->trace_state.find("m5=") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_child_keeps_trace_flags_and_state_with_a_new_span_id) {
    const auto parent = kt::parse_trace_context(valid, "rojo=1");
    BOOST_TEST_REQUIRE(parent.has_value());
    std::set<std::string> span_ids;
    for (int i = 0; i < 1000; ++i) {
        const auto child = parent->child();
        BOOST_TEST_REQUIRE(child.trace_id == parent->trace_id);
        BOOST_TEST_REQUIRE(child.flags == parent->flags);
        BOOST_TEST_REQUIRE(child.trace_state == "rojo=1");
        BOOST_TEST_REQUIRE(child.span_id != parent->span_id);
        span_ids.insert(child.span_id_hex());
        const auto reparsed = kt::parse_trace_context(child.traceparent());
        BOOST_TEST_REQUIRE(reparsed.has_value());  // never an all-zero span id
        BOOST_TEST_REQUIRE(reparsed->span_id == child.span_id);
    }
    BOOST_TEST(span_ids.size() == 1000u);
}

BOOST_AUTO_TEST_CASE(children_made_on_several_threads_get_distinct_span_ids) {
    const auto parent = *kt::parse_trace_context(valid);
    std::vector<std::vector<std::string>> ids(4);
    std::vector<std::thread> threads;
    for (auto& mine : ids)
        threads.emplace_back([&parent, &mine] {
            for (int i = 0; i < 500; ++i) mine.push_back(parent.child().span_id_hex());
        });
    for (auto& t : threads) t.join();
    std::set<std::string> all;
    for (const auto& mine : ids) all.insert(mine.begin(), mine.end());
    BOOST_TEST(all.size() == 2000u);
}

BOOST_AUTO_TEST_CASE(set_trace_headers_replaces_the_records_trace_headers) {
    kt::record r{.topic = "t",
                 .headers = {{"traceparent", "old"}, {"tracestate", "old=1"}, {"other", "x"}}};
    auto context = *kt::parse_trace_context(valid);
    kt::set_trace_headers(r, context);
    BOOST_TEST(header_of(r, "traceparent") == valid);
    BOOST_TEST(header_of(r, "tracestate") == "<none>");
    BOOST_TEST(header_of(r, "other") == "x");
    context.trace_state = "rojo=1";
    kt::set_trace_headers(r, context);
    BOOST_TEST(header_of(r, "tracestate") == "rojo=1");
    BOOST_TEST(r.headers.size() == 3u);
}
