// kt-cluster: runs kt::embedded_cluster in its own process (so several kt-host processes, or a
// kt-host that is killed and restarted, can share it) until SIGINT/SIGTERM.
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <cli.hpp>
#include <kt/kt.hpp>

namespace po = boost::program_options;

int main(int argc, char** argv) {
    int brokers = 3;
    int session_ms = 30000, heartbeat_ms = 3000;
    std::vector<std::string> topics;
    po::options_description desc(
        "kt-cluster: an embedded Kafka cluster (librdkafka mock brokers) until SIGINT/SIGTERM\n"
        "Options");
    desc.add_options()("help,h", "show this help")(
        "brokers", po::value(&brokers)->default_value(brokers), "number of brokers")(
        "topic", po::value(&topics),
        "NAME[:PARTITIONS] to create (default 6 partitions), repeatable")(
        "consumer-session-timeout-ms", po::value(&session_ms)->default_value(session_ms),
        "session timeout of group.protocol=consumer (KIP-848) groups, set by the brokers")(
        "consumer-heartbeat-interval-ms", po::value(&heartbeat_ms)->default_value(heartbeat_ms),
        "heartbeat interval of group.protocol=consumer groups, set by the brokers");
    try {
        if (!kt::cli::parse(argc, argv, desc)) return 0;
        if (brokers < 1) throw po::error("--brokers must be at least 1");
        if (heartbeat_ms < 1 || session_ms <= heartbeat_ms)
            throw po::error(
                "--consumer-heartbeat-interval-ms must be positive and below "
                "--consumer-session-timeout-ms");
        // Block the stop signals before the cluster starts its threads, then wait for one.
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
        kt::embedded_cluster cluster(
            {.brokers = brokers,
             .consumer_group_session_timeout = std::chrono::milliseconds(session_ms),
             .consumer_group_heartbeat_interval = std::chrono::milliseconds(heartbeat_ms)});
        for (const auto& spec : topics) {
            const auto colon = spec.find(':');
            const int partitions =
                colon == std::string::npos ? 6 : std::stoi(spec.substr(colon + 1));
            cluster.create_topic(spec.substr(0, colon), partitions);
        }
        std::cout << "bootstrap: " << cluster.bootstrap() << std::endl;
        int received = 0;
        sigwait(&stop_signals, &received);
        return 0;
    } catch (const po::error& e) {
        std::cerr << "kt-cluster: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kt-cluster: error: " << e.what() << '\n';
        return 1;
    }
}
