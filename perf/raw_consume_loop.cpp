// The raw loop kafka-triggers is measured against: a plain librdkafka at-least-once consumer
// (rd_kafka_consumer_poll, rd_kafka_offset_store, auto commit of the stored offsets) that reads
// N messages of one topic and exits. Run under callgrind by scripts/bench-instructions.sh.
#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int fail(const char* what, const char* why) {
    std::fprintf(stderr, "raw_consume_loop: %s: %s\n", what, why);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: raw_consume_loop BOOTSTRAP TOPIC GROUP MESSAGES\n");
        return 2;
    }
    const long expected = std::atol(argv[4]);
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const std::pair<const char*, const char*> properties[] = {
        {"bootstrap.servers", argv[1]},
        {"group.id", argv[3]},
        {"auto.offset.reset", "earliest"},
        {"enable.auto.offset.store", "false"},
        {"partition.assignment.strategy", "cooperative-sticky"},
    };
    for (const auto& [name, value] : properties)
        if (rd_kafka_conf_set(conf, name, value, error, sizeof error) != RD_KAFKA_CONF_OK)
            return fail(name, error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!rk) return fail("rd_kafka_new", error);
    rd_kafka_poll_set_consumer(rk);
    auto* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, argv[2], RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(rk, topics)) return fail("subscribe", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(topics);

    long seen = 0;
    while (seen < expected) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            ++seen;
            rd_kafka_offset_store_message(m);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_commit(rk, nullptr, 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    std::printf("%ld\n", seen);
    return 0;
}
