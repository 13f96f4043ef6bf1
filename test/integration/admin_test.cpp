// Integration tests of kt::admin's group description and offset resets on a Kafka (embedded
// cluster, or $KT_BOOTSTRAP); resets are read back with an independent client (broker_offsets).
#define BOOST_TEST_MODULE admin
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include <kt/kt.hpp>

#include "broker_offsets.hpp"
#include "coro_test.hpp"
#include "host_helpers.hpp"
#include "kafka_fixture.hpp"

using namespace std::chrono_literals;
using kt_test::broker_offsets;
using kt_test::handled_log;
using kt_test::kafka;
using kt_test::recording;
using kt_test::stop_host;
using kt_test::two_shards;
using kt_test::wait_until;

namespace {

using target = kt::offset_target;
constexpr int non_empty_group = 68;  // RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP

/// partition → committed offset the broker holds for `group` (-1: none), via broker_offsets.py.
std::map<std::int32_t, std::int64_t> committed_by_broker(const std::string& group,
                                                         const std::string& topic) {
    std::map<std::int32_t, std::int64_t> result;
    for (const auto& [p, offsets] : broker_offsets(kafka::instance().bootstrap(), group, topic))
        result[p] = offsets.committed;
    return result;
}

std::map<std::int32_t, std::int64_t> new_offsets(const std::vector<kt::offset_reset>& plan) {
    std::map<std::int32_t, std::int64_t> result;
    for (const auto& p : plan) result[p.partition] = p.new_offset;
    return result;
}

/// A trigger host on `topic` in `group` that handled `count` messages: a member of the group
/// until leave() stops it (which commits every handled offset and leaves the group).
class running_member {
  public:
    running_member(const std::string& topic, const std::string& group, std::size_t count)
        : host_(rt_) {
        host_.add_trigger(
            {.name = "t", .topic = topic, .consumer = kafka::instance().consumer(group)},
            recording(log_, "t"));
        host_.start();
        BOOST_TEST_REQUIRE(wait_until([&] { return log_.distinct("t") == count; }));
    }
    void leave() { stop_host(rt_, host_); }

  private:
    kt::runtime rt_{two_shards};
    kt::trigger_host host_;
    handled_log log_;
};

/// What the embedded cluster cannot do, said once where a check is skipped.
void skipped_on_embedded(const std::string& what) {
    BOOST_TEST_MESSAGE("skipped on the embedded cluster: " << what);
}

}  // namespace

BOOST_AUTO_TEST_CASE(describe_shows_committed_offsets_high_watermarks_and_lag) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("describe", 3, 300);
    running_member(topic, group, 300).leave();
    k.produce(topic, 30, 100, 300);  // 30 records the group has not read

    const auto d = k.admin().describe_group(group, topic);
    const auto broker = broker_offsets(k.bootstrap(), group, topic);
    BOOST_TEST(d.group == group);
    BOOST_TEST_REQUIRE(d.partitions.size() == 3u);
    std::int64_t total_lag = 0;
    for (const auto& p : d.partitions) {
        BOOST_TEST(p.topic == topic);
        BOOST_TEST_REQUIRE(p.committed.has_value());
        BOOST_TEST(*p.committed == broker.at(p.partition).committed);
        BOOST_TEST(p.high_watermark == broker.at(p.partition).high_watermark);
        BOOST_TEST(p.lag == p.high_watermark - *p.committed);
        BOOST_TEST(!p.owner.has_value());
        total_lag += p.lag;
    }
    BOOST_TEST(total_lag == 30);
    if (k.real()) {
        BOOST_TEST(d.state == "Empty");
        BOOST_TEST(d.members.empty());
        BOOST_TEST(d.type == (kafka::consumer_protocol() ? "Consumer" : "Classic"));
        // Without a topic: every topic the group committed to.
        const auto all = k.admin().describe_group(group);
        BOOST_TEST(all.partitions.size() == 3u);
    } else {
        BOOST_TEST(d.state.empty());
        skipped_on_embedded(
            "group state and type (the mock brokers have neither DescribeGroups nor "
            "ConsumerGroupDescribe); all topics (their OffsetFetch answers the all-topics form "
            "with none)");
    }

    // A group that committed nothing: its lag is what a member starting at earliest would read.
    const auto fresh = k.admin().describe_group(k.unique("nothing"), topic);
    BOOST_TEST_REQUIRE(fresh.partitions.size() == 3u);
    for (const auto& p : fresh.partitions) {
        BOOST_TEST(!p.committed.has_value());
        BOOST_TEST(p.lag == p.high_watermark - p.low_watermark);
    }
}

BOOST_AUTO_TEST_CASE(resets_to_each_target_apply_and_dry_runs_change_nothing) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("reset", 3, 300);
    auto& admin = k.admin();
    const auto high = admin.high_watermarks(topic);
    BOOST_TEST_REQUIRE(std::all_of(high.begin(), high.end(), [](auto p) { return p.second > 5; }));

    const auto at_five = admin.reset_offsets(group, topic, target::parse("offset:5"));
    BOOST_TEST_REQUIRE(at_five.size() == 3u);
    for (const auto& p : at_five) {
        BOOST_TEST(!p.current.has_value());
        BOOST_TEST(p.new_offset == 5);
        BOOST_TEST(!p.clamped);
    }
    const std::map<std::int32_t, std::int64_t> fives{{0, 5}, {1, 5}, {2, 5}};
    BOOST_TEST(committed_by_broker(group, topic) == fives);

    // Dry runs: the plan, and nothing changed.
    const auto dry = admin.reset_offsets(group, topic, target::parse("earliest"), {}, true);
    for (const auto& p : dry) {
        BOOST_TEST(p.current.value_or(-1) == 5);
        BOOST_TEST(p.new_offset == 0);
    }
    const auto beyond =
        admin.reset_offsets(group, topic, target::parse("offset:1000000"), {}, true);
    BOOST_TEST(new_offsets(beyond) == high);
    BOOST_TEST(std::all_of(beyond.begin(), beyond.end(), [](auto& p) { return p.clamped; }));
    BOOST_TEST(committed_by_broker(group, topic) == fives);

    admin.reset_offsets(group, topic, target::parse("earliest"));
    const std::map<std::int32_t, std::int64_t> zeros{{0, 0}, {1, 0}, {2, 0}};
    BOOST_TEST(committed_by_broker(group, topic) == zeros);

    BOOST_TEST(new_offsets(admin.reset_offsets(group, topic, target::parse("latest"))) == high);
    BOOST_TEST(committed_by_broker(group, topic) == high);

    // A subset of the partitions: the others keep their offsets.
    const auto subset = admin.reset_offsets(group, topic, target::parse("offset:2"), {0, 2});
    BOOST_TEST(subset.size() == 2u);
    BOOST_TEST(committed_by_broker(group, topic) ==
               (std::map<std::int32_t, std::int64_t>{{0, 2}, {1, high.at(1)}, {2, 2}}));

    // Beyond the log: clamped to the high watermark, as kafka-consumer-groups.sh does.
    const auto clamped = admin.reset_offsets(group, topic, target::parse("offset:1000000"));
    BOOST_TEST(new_offsets(clamped) == high);
    BOOST_TEST(committed_by_broker(group, topic) == high);
}

BOOST_AUTO_TEST_CASE(a_timestamp_reset_goes_to_the_first_record_at_or_after_it) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("timestamp", 2, 100);
    auto& admin = k.admin();
    const auto before = admin.high_watermarks(topic);
    // Records produced from here on carry CreateTime >= stamp (the producer's clock).
    const auto now_ms = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    const auto stamp = now_ms() + 1;
    while (now_ms() <= stamp) std::this_thread::sleep_for(1ms);
    k.produce(topic, 100, 100, 100);
    const auto after = admin.high_watermarks(topic);

    // No record at or after a future timestamp: the high watermark, as Kafka's tool does.
    const auto future = fmt::format("timestamp:{}", now_ms() + 3'600'000);
    BOOST_TEST(new_offsets(admin.reset_offsets(group, topic, target::parse(future))) == after);
    BOOST_TEST(committed_by_broker(group, topic) == after);

    const auto at_stamp = target::parse(fmt::format("timestamp:{}", stamp));
    if (!k.real()) {
        skipped_on_embedded(
            "a timestamp inside the log (the mock's ListOffsets ignores the timestamp and answers "
            "'no record', so every partition goes to its high watermark)");
        return;
    }
    const auto dry = admin.reset_offsets(group, topic, at_stamp, {}, true);
    BOOST_TEST(new_offsets(dry) == before);
    BOOST_TEST(committed_by_broker(group, topic) == after);
    admin.reset_offsets(group, topic, at_stamp);
    BOOST_TEST(committed_by_broker(group, topic) == before);
    const std::map<std::int32_t, std::int64_t> zeros{{0, 0}, {1, 0}};
    BOOST_TEST(new_offsets(admin.reset_offsets(group, topic, target::parse("timestamp:0"))) ==
               zeros);
}

BOOST_AUTO_TEST_CASE(a_reset_is_refused_while_the_group_has_members_and_allowed_after) {
    auto& k = kafka::instance();
    const auto [topic, group] = k.topic_with_data("refused", 2, 100);
    auto refusal = [&](bool dry_run) {
        try {
            k.admin().reset_offsets(group, topic, target::parse("earliest"), {}, dry_run);
        } catch (const kt::kafka_error& e) {
            BOOST_TEST(e.code() == kt::make_kafka_error(non_empty_group));
            return std::string(e.what());
        }
        return std::string("not refused");
    };
    {
        running_member member(topic, group, 100);
        const auto refused = refusal(false);
        BOOST_TEST_INFO(refused);
        BOOST_TEST(refused.find("group '" + group + "'") != std::string::npos);
        if (k.real()) {
            BOOST_TEST(refused.find("it is Stable with 1 member(s)") != std::string::npos);
            BOOST_TEST(refusal(true).find("1 member(s)") != std::string::npos);  // dry run too
            const auto d = k.admin().describe_group(group, topic);
            BOOST_TEST(d.state == "Stable");
            BOOST_TEST_REQUIRE(d.members.size() == 1u);
            BOOST_TEST(!d.members[0].client_id.empty());
            for (const auto& p : d.partitions) {
                BOOST_TEST_REQUIRE(p.owner.has_value());
                BOOST_TEST(p.owner->member_id == d.members[0].member_id);
            }
        } else {
            // The mock cannot describe the group; its refusal of the commit is the guard.
            BOOST_TEST(refused.find("Unknown member") != std::string::npos);
        }
        member.leave();
    }
    BOOST_TEST(committed_by_broker(group, topic) == k.admin().high_watermarks(topic));
    if (!k.real()) {
        skipped_on_embedded(
            "the reset after the member left (the mock keeps a group's membership record after "
            "its members left and refuses every commit from outside the group: UNKNOWN_MEMBER_ID)");
        return;
    }
    k.admin().reset_offsets(group, topic, target::parse("earliest"));
    BOOST_TEST(committed_by_broker(group, topic) ==
               (std::map<std::int32_t, std::int64_t>{{0, 0}, {1, 0}}));
}

BOOST_AUTO_TEST_CASE(unknown_topics_bad_partitions_and_bad_targets_are_named) {
    auto& k = kafka::instance();
    const auto topic = k.new_topic("errors", 3);
    const auto missing = k.unique("no-such-topic");
    auto message_of = [](auto call) {
        try {
            call();
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const auto unknown = message_of(
        [&] { k.admin().reset_offsets("g", missing, target::parse("earliest"), {}, true); });
    BOOST_TEST_INFO(unknown);
    BOOST_TEST(unknown.find("topic '" + missing + "' does not exist") != std::string::npos);
    // A second look finds it missing too: looking did not create it.
    BOOST_TEST(message_of([&] { k.admin().describe_group("g", missing); }) == unknown);

    BOOST_CHECK_THROW(k.admin().reset_offsets("g", topic, target::parse("earliest"), {0, 7}, true),
                      kt::config_error);
    const auto partition = message_of(
        [&] { k.admin().reset_offsets("g", topic, target::parse("earliest"), {7}, true); });
    BOOST_TEST(partition == "topic '" + topic + "' has no partition 7 (it has partitions 0..2)");

    for (const char* bad : {"newest", "offset:", "offset:-1", "offset:5x", "timestamp:yesterday",
                            "timestamp:-5", "Earliest"}) {
        const auto what = message_of([&] { target::parse(bad); });
        BOOST_TEST_INFO(bad);
        BOOST_TEST(what == fmt::format("invalid offset target '{}': use earliest, latest, "
                                       "timestamp:<ms since the epoch> or offset:<n>",
                                       bad));
    }
    BOOST_TEST((target::parse("timestamp:1700000000000").what == target::kind::timestamp));
    BOOST_TEST(target::parse("offset:42").value == 42);
}
