// kt::producer: enqueue with rd_kafka_producev, count delivery reports, flush with a deadline.
#include <kt/producer.hpp>

#include <atomic>
#include <thread>

#include "log.hpp"
#include "rdkafka_handles.hpp"

namespace kt {

struct producer::state {
    detail::client_ptr client;
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> failed{0};

    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* self = static_cast<state*>(opaque);
        if (m->err) {
            self->failed.fetch_add(1, std::memory_order_relaxed);
            detail::log(log_level::warning, "delivery to '{}' failed: {}",
                        rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        } else {
            self->delivered.fetch_add(1, std::memory_order_relaxed);
        }
    }
};

producer::producer(const producer_config& config) : state_(std::make_unique<state>()) {
    auto conf = detail::make_conf(config);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &state::on_delivery);
    rd_kafka_conf_set_opaque(conf.get(), state_.get());
    state_->client = detail::make_client(RD_KAFKA_PRODUCER, std::move(conf));
}

producer::~producer() {
    if (!flush(std::chrono::seconds(10)))
        detail::log(log_level::warning, "producer closed with undelivered records");
}

void producer::send(const std::string& topic, std::string_view key, std::string_view value,
                    std::int32_t partition) {
    for (;;) {
        const auto err = rd_kafka_producev(
            state_->client.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(state_->client.get(), 10);  // serve delivery reports to make room
            continue;
        }
        detail::throw_if_error(err, "produce to " + topic);
        rd_kafka_poll(state_->client.get(), 0);
        return;
    }
}

bool producer::flush(std::chrono::milliseconds timeout) {
    return rd_kafka_flush(state_->client.get(), static_cast<int>(timeout.count())) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
}

std::uint64_t producer::delivered() const noexcept {
    return state_->delivered.load();
}
std::uint64_t producer::failed() const noexcept {
    return state_->failed.load();
}

}  // namespace kt
