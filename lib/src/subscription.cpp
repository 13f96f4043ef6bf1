// kt::subscription: pull-style delivery. Any thread; next() receives on the inbox's executor and
// complete() hands the message back to its shard's runner.
#include <kt/trigger_host.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "consumer/shared_consumer.hpp"
#include "shard/trigger_runner.hpp"

namespace asio = boost::asio;

namespace kt {

asio::awaitable<message> subscription::next() {
    // The inbox is touched only on its executor; a co_await on dispatch() would not move this
    // coroutine there, so the receive runs as its own coroutine on the inbox's executor.
    auto inbox = inbox_;
    auto receive = [inbox]() -> asio::awaitable<message> {
        auto m = co_await inbox->channel.async_receive(asio::use_awaitable);
        co_return m;
    };
    auto m = co_await asio::co_spawn(inbox->executor, std::move(receive), asio::use_awaitable);
    co_return m;
}

void subscription::complete(const message& m) {
    auto trigger = inbox_->trigger.lock();
    if (!trigger) return;
    const auto shard = detail::shard_of(m.topic(), m.partition(), inbox_->rt->shard_count());
    asio::post(inbox_->rt->shard(shard),
               [trigger, shard, m] { trigger->runners[shard]->complete_pulled(m); });
}

asio::awaitable<void> subscription::commit() {
    auto trigger = inbox_->trigger.lock();
    if (!trigger) co_return;
    auto consumer = trigger->consumer;
    auto commit = consumer->async_commit(asio::use_awaitable);
    co_await std::move(commit);
}

const std::string& subscription::name() const noexcept {
    return inbox_->name;
}

}  // namespace kt
