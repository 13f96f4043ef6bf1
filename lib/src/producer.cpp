// kt::producer: rd_kafka_producev with per-record completion handlers, a poll thread serving
// delivery reports (and blocking jobs), flush with a deadline, purge at close.
#include <kt/producer.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "handling_trace.hpp"
#include "log.hpp"
#include "producer_state.hpp"

namespace asio = boost::asio;

namespace kt {
namespace {

/// A send() waiting for its delivery report; owned through the message's opaque pointer.
struct pending_send {
    virtual ~pending_send() = default;
    /// Resumes the sender on its own executor.
    virtual void complete(std::exception_ptr error, delivery result) = 0;
};

template <typename Handler>
struct pending_send_for final : pending_send {
    explicit pending_send_for(Handler h)
        : handler(std::move(h)),
          work(asio::make_work_guard(asio::get_associated_executor(handler))) {}
    void complete(std::exception_ptr error, delivery result) override {
        auto ex = work.get_executor();
        asio::post(ex, [h = std::move(handler), error, result = std::move(result)]() mutable {
            std::move(h)(error, std::move(result));
        });
        work.reset();
    }
    Handler handler;
    asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
};

std::exception_ptr delivery_error(rd_kafka_resp_err_t err, std::string_view topic,
                                  std::int32_t partition) {
    return std::make_exception_ptr(kafka_error(
        make_kafka_error(err),
        fmt::format("delivery to '{}' [{}] failed: {}", topic, partition, rd_kafka_err2str(err))));
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<producer::state*>(opaque);
    const char* topic = rd_kafka_topic_name(m->rkt);
    (m->err ? self->failed : self->delivered).fetch_add(1, std::memory_order_relaxed);
    if (m->err && !m->_private && detail::log_enabled(log_level::warning))  // once per 10 s:
        detail::log_line(
            log_level::warning,  // an outage fails a whole queue of them at once
            fmt::format("delivery to '{}' failed: {}", topic, rd_kafka_err2str(m->err)),
            detail::repeats::limited);
    if (!m->_private) return;
    std::unique_ptr<pending_send> op(static_cast<pending_send*>(m->_private));
    op->complete(m->err ? delivery_error(m->err, topic, m->partition) : nullptr,
                 delivery{topic, m->partition, m->offset});
}

/// rd_kafka_producev for one record; `opaque` travels to the delivery report.
rd_kafka_resp_err_t produce_record(rd_kafka_t* rk, const record& r, void* opaque) {
    rd_kafka_headers_t* headers = nullptr;
    if (!r.headers.empty()) {
        headers = rd_kafka_headers_new(r.headers.size());
        for (const auto& h : r.headers)
            rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                                h.value ? h.value->data() : nullptr,
                                h.value ? static_cast<ssize_t>(h.value->size()) : 0);
    }
    auto* key = r.key ? const_cast<char*>(r.key->data()) : nullptr;
    auto* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
    const std::size_t key_size = r.key ? r.key->size() : 0;
    const std::size_t value_size = r.value ? r.value->size() : 0;
    const auto err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_size),
                          RD_KAFKA_V_VALUE(value, value_size), RD_KAFKA_V_HEADERS(headers),
                          RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err && headers) rd_kafka_headers_destroy(headers);  // owned by the message on success
    return err;
}

std::exception_ptr enqueue_error(rd_kafka_resp_err_t err, const record& r) {
    return std::make_exception_ptr(
        kafka_error(make_kafka_error(err),
                    fmt::format("cannot produce to '{}' (key {} bytes, value {} bytes): {}",
                                r.topic, r.key ? r.key->size() : 0, r.value ? r.value->size() : 0,
                                rd_kafka_err2str(err))));
}

}  // namespace

void producer::state::post_job(std::function<void()> job) {
    {
        std::lock_guard lock(jobs_mutex);
        jobs.push_back(std::move(job));
    }
    rd_kafka_yield(client.get());  // cut the poll thread's current wait short
}

void producer::state::poll_loop() {
    while (!stopping.load(std::memory_order_acquire)) {
        std::deque<std::function<void()>> ready;
        {
            std::lock_guard lock(jobs_mutex);
            ready.swap(jobs);
        }
        for (auto& job : ready) job();
        if (ready.empty()) rd_kafka_poll(client.get(), 100);
    }
}

producer::producer(const producer_config& config) : state_(std::make_shared<state>()) {
    auto effective = config;
    if (!effective.contains("enable.idempotence")) effective.set("enable.idempotence", "true");
    auto conf = detail::make_conf(effective);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &on_delivery);
    rd_kafka_conf_set_opaque(conf.get(), state_.get());
    state_->client = detail::make_client(RD_KAFKA_PRODUCER, std::move(conf));
    state_->poller = std::thread([s = state_.get()] {
        detail::name_this_thread("kt-producer");
        s->poll_loop();
    });
}

producer::~producer() {
    if (trace_) return;  // a handler's view: the trigger's producer flushes when it goes
    if (!flush(flush_timeout)) {
        detail::log(log_level::warning,
                    "producer closed with {} undelivered records after {} ms; failing them",
                    queue_depth(), flush_timeout.count());
        rd_kafka_purge(state_->client.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(state_->client.get(), 1000);  // serves the purged records' reports
    }
    state_->stopping.store(true, std::memory_order_release);
    rd_kafka_yield(state_->client.get());
    state_->poller.join();
    for (auto& job : state_->jobs) job();  // jobs observe `stopping` and fail fast
}

asio::awaitable<delivery> producer::send(record r) {
    if (trace_) detail::propagate_trace(r, *trace_);
    auto st = state_;
    auto initiation = [st, &r](auto handler) {
        std::unique_ptr<pending_send> op =
            std::make_unique<pending_send_for<decltype(handler)>>(std::move(handler));
        const auto err = produce_record(st->client.get(), r, op.get());
        if (!err) {
            op.release();  // owned by the delivery report now
            return;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            op->complete(enqueue_error(err, r), {});
            return;
        }
        // Local queue full: retry from the poll thread, which serves reports while it waits.
        auto* raw = op.release();
        st->post_job([st, r = std::move(r), raw] {
            rd_kafka_resp_err_t again;
            while ((again = st->stopping.load() ? RD_KAFKA_RESP_ERR__DESTROY
                                                : produce_record(st->client.get(), r, raw)) ==
                   RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(st->client.get(), 10);
            if (!again) return;  // the delivery report owns `raw` now
            std::unique_ptr<pending_send> owned(raw);
            owned->complete(enqueue_error(again, r), {});
        });
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>,
                                            void(std::exception_ptr, delivery)>(
        std::move(initiation), asio::use_awaitable);
}

void producer::produce(const std::string& topic, std::string_view key, std::string_view value,
                       std::int32_t partition) {
    const trace_context* child = trace_ ? trace_->child_context() : nullptr;
    for (;;) {
        rd_kafka_headers_t* headers = nullptr;
        if (child) {
            const auto traceparent = child->traceparent();
            headers = rd_kafka_headers_new(2);
            rd_kafka_header_add(headers, "traceparent", -1, traceparent.data(),
                                static_cast<ssize_t>(traceparent.size()));
            if (!child->trace_state.empty())
                rd_kafka_header_add(headers, "tracestate", -1, child->trace_state.data(),
                                    static_cast<ssize_t>(child->trace_state.size()));
        }
        const auto err = rd_kafka_producev(
            state_->client.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
        if (err && headers) rd_kafka_headers_destroy(headers);  // owned by the message on success
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the poll thread drains
            continue;
        }
        detail::throw_if_error(err, "produce to " + topic);
        return;
    }
}

void producer::produce(record r) {
    if (trace_) detail::propagate_trace(r, *trace_);
    rd_kafka_resp_err_t err;
    while ((err = produce_record(state_->client.get(), r, nullptr)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the poll thread drains
    if (err) std::rethrow_exception(enqueue_error(err, r));
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
std::size_t producer::queue_depth() const noexcept {
    return static_cast<std::size_t>(rd_kafka_outq_len(state_->client.get()));
}

void set_trace_headers(record& r, const trace_context& context) {
    std::erase_if(r.headers, [](const header& h) {
        return h.name == "traceparent" || h.name == "tracestate";
    });
    r.headers.push_back({"traceparent", context.traceparent()});
    if (!context.trace_state.empty()) r.headers.push_back({"tracestate", context.trace_state});
}

std::string detail::producer_access::name(const producer& p) {
    return rd_kafka_name(p.state_->client.get());
}

}  // namespace kt
