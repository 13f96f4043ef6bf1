// The shard side of a link: reads the ring and hands each item to its trigger's runner.
#pragma once

#include <memory>

#include <boost/asio/awaitable.hpp>

#include "shard/shard_link.hpp"

namespace kt::detail {

/// Runs on shard `shard` until the poll side closes the link (then drains what is left).
boost::asio::awaitable<void> read_shard(std::shared_ptr<shard_link> link, unsigned shard);

}  // namespace kt::detail
