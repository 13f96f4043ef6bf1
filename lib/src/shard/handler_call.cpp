// Calling a trigger's code: attempts, retries after a backoff, dead letter records and writes,
// and the outcome. Shard thread.
#include "shard/handler_call.hpp"

#include <cxxabi.h>

#include <ctime>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "host/retry_backoff.hpp"
#include "log.hpp"

namespace asio = boost::asio;

namespace kt::detail {

std::pair<std::string, std::string> describe_failure(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> name(
            abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), std::free);
        return {status == 0 && name ? name.get() : typeid(e).name(), e.what()};
    } catch (...) {
        return {"unknown", "a non-standard exception"};
    }
}

bool retryable(const retry_policy& policy, const std::exception_ptr& error) {
    if (policy.retryable) return policy.retryable(error);
    try {
        std::rethrow_exception(error);
    } catch (const permanent_error&) {
        return false;
    } catch (...) {
        return true;
    }
}

namespace {

std::string utc_now_iso8601() {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

record dead_letter_record(const trigger_state& trigger, const message& m,
                          const std::pair<std::string, std::string>& failure, unsigned attempts) {
    record r;
    r.topic = trigger.dead_letter_topic;
    if (m.has_key()) r.key = std::string(m.key());
    if (m.has_value()) r.value = std::string(m.value());
    for (const auto& [name, value] : m.headers())
        r.headers.push_back(
            {std::string(name), value ? std::optional<std::string>(*value) : std::nullopt});
    auto add = [&](const char* name, std::string value) {
        r.headers.push_back({name, std::move(value)});
    };
    add("kt-original-topic", std::string(m.topic()));
    add("kt-original-partition", std::to_string(m.partition()));
    add("kt-original-offset", std::to_string(m.offset()));
    add("kt-trigger", trigger.options.name);
    add("kt-error-type", failure.first);
    add("kt-error-message", failure.second);
    add("kt-attempts", std::to_string(attempts));
    add("kt-failed-at", utc_now_iso8601());
    return r;
}

/// Waits `delay`; false when cancelled meanwhile.
asio::awaitable<bool> sleep_for(std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec;
}

/// Runs the trigger's code once over `work`; a transform writes through `out`.
asio::awaitable<void> invoke(trigger_state& trigger, const work_items& work, kt::producer* out) {
    const auto& code = trigger.code;
    if (code.batch)
        co_await code.batch(std::span<const message>(work.data(), work.size()));
    else if (code.transform)
        co_await code.transform(work.front(), *out);
    else
        co_await code.plain(work.front());
}

}  // namespace

asio::awaitable<transaction_attempt> handler_call::run_in_transaction(
    const work_items& work, kt::producer& producer, const dead_letter_reason* reason) {
    std::exception_ptr error;
    auto result = call_outcome::handled;
    try {
        if (reason) {
            result = reason->write ? call_outcome::dead_lettered : call_outcome::failed;
            if (reason->write) {
                const auto letter =
                    dead_letter_record(trigger_, work.front(), reason->failure, reason->attempts);
                co_await producer.send(letter);
            }
        } else {
            co_await invoke(trigger_, work, &producer);
        }
    } catch (...) {
        error = std::current_exception();
    }
    if (error && cancelled(co_await asio::this_coro::cancellation_state))
        co_return transaction_attempt{call_outcome::cancelled, error};
    co_return transaction_attempt{error ? call_outcome::failed : result, error};
}

asio::awaitable<bool> handler_call::write_dead_letters(
    const work_items& work, const std::pair<std::string, std::string>& failure, unsigned attempts) {
    for (const auto& m : work) {
        const auto letter = dead_letter_record(trigger_, m, failure, attempts);
        for (unsigned n = 1;; ++n) {
            std::exception_ptr error;
            try {
                co_await trigger_.dead_letters()->send(letter);
                break;
            } catch (...) {
                error = std::current_exception();
            }
            if (cancelled(co_await asio::this_coro::cancellation_state)) co_return false;
            log(log_level::error,
                "trigger '{}': writing {}[{}]@{} to dead letter topic '{}' failed (attempt {}): "
                "{}; retrying, the offset stays uncommitted meanwhile",
                trigger_.options.name, m.topic(), m.partition(), m.offset(),
                trigger_.dead_letter_topic, n, describe_failure(error).second);
            if (!co_await sleep_for(backoff(trigger_.options.retry, n))) co_return false;
        }
    }
    co_return true;
}

asio::awaitable<call_outcome> handler_call::run(const work_items& work) {
    using outcome = call_outcome;
    const auto& policy = trigger_.options.retry;
    const unsigned max_attempts = std::max(1u, policy.max_attempts);
    std::exception_ptr error;
    unsigned attempt = 0;
    for (;;) {
        ++attempt;
        error = nullptr;
        try {
            co_await invoke(trigger_, work, trigger_.output.get());
        } catch (...) {
            error = std::current_exception();
        }
        if (!error) co_return outcome::handled;
        if (cancelled(co_await asio::this_coro::cancellation_state)) co_return outcome::cancelled;
        const bool again = attempt < max_attempts && retryable(policy, error);
        const auto& first = work.front();
        log(again ? log_level::warning : log_level::error,
            "trigger '{}' failed on {}[{}]@{}{} (attempt {} of {}): {}{}", trigger_.options.name,
            first.topic(), first.partition(), first.offset(),
            work.size() > 1 ? fmt::format(" (batch of {})", work.size()) : std::string{}, attempt,
            max_attempts, describe_failure(error).second, again ? "; retrying" : "");
        if (!again) break;
        add_local(metrics_.retried, 1);
        if (!co_await sleep_for(backoff(policy, attempt))) co_return outcome::cancelled;
    }
    if (trigger_.dead_letter_topic.empty()) co_return outcome::failed;
    const bool written = co_await write_dead_letters(work, describe_failure(error), attempt);
    co_return written ? outcome::dead_lettered : outcome::cancelled;
}

std::chrono::milliseconds handler_call::backoff(const retry_policy& policy, unsigned attempt) {
    return retry_backoff(policy, attempt, jitter_random_);
}

}  // namespace kt::detail
