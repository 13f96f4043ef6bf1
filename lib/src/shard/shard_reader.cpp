#include "shard/shard_reader.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "shard/trigger_runner.hpp"

namespace asio = boost::asio;

namespace kt::detail {

asio::awaitable<void> read_shard(std::shared_ptr<shard_link> link, unsigned shard) {
    auto dispatch = [shard](const shard_item& item) {
        if (item.what == shard_item::kind::deliver_all) {
            for (auto* trigger : item.receivers->triggers())
                trigger->runners[shard]->deliver(message(item.message));
            fanout_list::release(item.receivers);
            return;
        }
        auto& runner = *item.trigger->runners[shard];
        switch (item.what) {
            case shard_item::kind::deliver:
                runner.deliver(message(item.message));
                break;
            case shard_item::kind::deliver_all:  // above
                break;
            case shard_item::kind::fence:
                runner.close();
                break;
            case shard_item::kind::revoke:
                runner.revoke(item.topic_id, item.partition, item.generation);
                break;
            case shard_item::kind::cancel_partition:
                runner.cancel_partition(item.topic_id, item.partition);
                break;
            case shard_item::kind::cancel_all:
                runner.cancel();
                break;
        }
    };
    auto& ring = link->from_poll();
    for (;;) {
        ring.consume_all(dispatch);
        auto [ec] = co_await ring.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            ring.consume_all(dispatch);
            co_return;
        }
    }
}

}  // namespace kt::detail
