// Umbrella header of kafka-triggers.
#pragma once

#include <kt/admin.hpp>
#include <kt/channel.hpp>
#include <kt/config.hpp>
#include <kt/config_file.hpp>
#include <kt/embedded_cluster.hpp>
#include <kt/errors.hpp>
#include <kt/log.hpp>
#include <kt/message.hpp>
#include <kt/metrics.hpp>
#include <kt/producer.hpp>
#include <kt/runtime.hpp>
#include <kt/trace.hpp>
#include <kt/trigger_host.hpp>
#include <kt/typed.hpp>
#include <kt/version.hpp>
