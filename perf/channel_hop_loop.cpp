// N hops of one item through kt::spsc_channel to a parked coroutine on a kt::runtime shard, each
// waited for before the next, so every push wakes the consumer: the channel hop's cost per
// message, for callgrind (scripts/bench-instructions.sh). Usage: channel_hop_loop N
#include <cstdio>
#include <cstdlib>
#include <semaphore>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <kt/channel.hpp>
#include <kt/runtime.hpp>

int main(int argc, char** argv) {
    const long hops = argc > 1 ? std::atol(argv[1]) : 10000;
    kt::runtime rt(kt::runtime_options{.shards = 1});
    kt::spsc_channel<long> channel(64, rt.shard(0));
    std::binary_semaphore handled(0);
    long sum = 0;
    auto read = [&]() -> boost::asio::awaitable<void> {
        for (long got = 0; got < hops;) {
            co_await channel.async_wait(boost::asio::use_awaitable);
            long item;
            while (channel.try_pop(item)) {
                sum += item;
                ++got;
                handled.release();
            }
        }
    };
    boost::asio::co_spawn(rt.shard(0), read, boost::asio::detached);
    for (long i = 0; i < hops; ++i) {
        channel.push(i);
        handled.acquire();
    }
    std::printf("%ld\n", sum);
    return 0;
}
