// One Kafka for a whole test binary: the embedded cluster, or real brokers from $KT_BOOTSTRAP.
#pragma once

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <kt/admin.hpp>
#include <kt/embedded_cluster.hpp>
#include <kt/producer.hpp>

namespace kt_test {

class kafka {
  public:
    static kafka& instance() {
        static kafka shared;
        return shared;
    }

    bool real() const noexcept { return !cluster_; }
    const std::string& bootstrap() const noexcept { return bootstrap_; }

    /// A fresh topic (unique name) with `partitions` partitions.
    std::string new_topic(const std::string& prefix, int partitions) {
        auto name = unique(prefix);
        create_topic(name, partitions);
        return name;
    }

    /// Creates topic `name` as is (e.g. a trigger's default dead letter topic "<topic>.dlq");
    /// the real broker does not create topics on first use.
    void create_topic(const std::string& name, int partitions) {
        if (cluster_)
            cluster_->create_topic(name, partitions);
        else
            admin().create_topic(name, partitions);
    }

    /// A fresh topic holding `count` records, and a fresh group name: (topic, group).
    std::pair<std::string, std::string> topic_with_data(const std::string& prefix, int partitions,
                                                        int count) {
        auto topic = new_topic(prefix, partitions);
        produce(topic, count);
        return {topic, unique(prefix)};
    }

    /// A unique name for groups and topics, so test cases never see each other's data.
    std::string unique(const std::string& prefix) {
        return fmt::format("{}-{}-{}", prefix, run_id_, counter_.fetch_add(1));
    }

    kt::consumer_config consumer(const std::string& group) const {
        kt::consumer_config config{{"bootstrap.servers", bootstrap_},
                                   {"group.id", group},
                                   {"topic.metadata.refresh.interval.ms", "1000"}};
        // $KT_GROUP_PROTOCOL=consumer runs the suite under KIP-848, where the brokers set the
        // session (6 s here too: the embedded cluster below, scripts/kafka-local.sh).
        if (consumer_protocol())
            config.set("group.protocol", "consumer");
        else  // the mock coordinator delays a rejoin by session timeout - 1 s
            config.set("session.timeout.ms", "6000");
        if (const char* debug = std::getenv("KT_TEST_RDKAFKA_DEBUG")) config.set("debug", debug);
        return config;
    }

    /// Produces `count` records "key-<i % keys>" / "value-<i>" and waits until all are delivered.
    void produce(const std::string& topic, int count, int keys = 100, int first = 0) {
        kt::producer producer({{"bootstrap.servers", bootstrap_}, {"linger.ms", "1"}});
        for (int i = first; i < first + count; ++i)
            producer.produce(topic, fmt::format("key-{}", i % keys), fmt::format("value-{}", i));
        if (!producer.flush(std::chrono::seconds(30)) || producer.failed() > 0)
            throw std::runtime_error("test produce failed");
    }

    kt::admin& admin() {
        if (!admin_)
            admin_ =
                std::make_unique<kt::admin>(kt::consumer_config{{"bootstrap.servers", bootstrap_}});
        return *admin_;
    }

    kt::embedded_cluster* embedded() noexcept { return cluster_.get(); }

    /// Whether the suite runs under group.protocol=consumer ($KT_GROUP_PROTOCOL).
    static bool consumer_protocol() {
        const char* protocol = std::getenv("KT_GROUP_PROTOCOL");
        return protocol && std::string_view(protocol) == "consumer";
    }

  private:
    kafka()
        : run_id_(
              fmt::format("{}-{}", ::getpid(),
                          std::chrono::system_clock::now().time_since_epoch().count() % 1000000)) {
        if (const char* env = std::getenv("KT_BOOTSTRAP"); env && *env) {
            bootstrap_ = env;
        } else {
            cluster_ = std::make_unique<kt::embedded_cluster>(kt::embedded_cluster_options{
                .brokers = 3,
                .consumer_group_session_timeout = std::chrono::seconds(6),
                .consumer_group_heartbeat_interval = std::chrono::seconds(1)});
            bootstrap_ = cluster_->bootstrap();
        }
    }

    std::unique_ptr<kt::embedded_cluster> cluster_;
    std::unique_ptr<kt::admin> admin_;
    std::string bootstrap_;
    std::string run_id_;
    std::atomic<int> counter_{0};
};

}  // namespace kt_test
