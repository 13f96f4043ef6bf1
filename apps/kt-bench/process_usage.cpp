// What the process costs while a scenario runs (CPU, threads, RSS, TCP connections, sampled from
// /proc and getrusage) and what machine it runs on.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <kt/runtime.hpp>

#include "bench.hpp"

namespace kt_bench {

double cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

namespace {

std::int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

/// Inodes of the sockets this process holds open.
std::set<std::string> socket_inodes() {
    std::set<std::string> inodes;
    std::error_code ec;
    for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
        if (!ec && target.rfind("socket:[", 0) == 0)
            inodes.insert(target.substr(8, target.size() - 9));
    }
    return inodes;
}

struct tcp_socket {
    unsigned local_port;
    bool listening;
    bool established;
};

/// Our sockets in one /proc/self/net/tcp* table (hex "addr:port" columns, st, ..., inode).
std::vector<tcp_socket> tcp_sockets(const std::string& table, const std::set<std::string>& ours) {
    std::vector<tcp_socket> sockets;
    std::ifstream file(table);
    std::string line;
    std::getline(file, line);  // header
    while (std::getline(file, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
        fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode;
        if (!ours.contains(inode)) continue;
        const auto port = std::stoul(local.substr(local.find(':') + 1), nullptr, 16);
        sockets.push_back({static_cast<unsigned>(port), state == "0A", state == "01"});
    }
    return sockets;
}

std::string first_line_with(const std::string& path, const std::string& prefix) {
    std::ifstream file(path);
    std::string line;
    while (std::getline(file, line))
        if (line.rfind(prefix, 0) == 0) return line;
    return {};
}

std::string after_colon(const std::string& line) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) return {};
    return line.substr(line.find_first_not_of(" \t", colon + 1));
}

}  // namespace

unsigned count_connections() {
    const auto ours = socket_inodes();
    std::vector<tcp_socket> sockets = tcp_sockets("/proc/self/net/tcp", ours);
    const auto v6 = tcp_sockets("/proc/self/net/tcp6", ours);
    sockets.insert(sockets.end(), v6.begin(), v6.end());
    std::set<unsigned> listening;
    for (const auto& s : sockets)
        if (s.listening) listening.insert(s.local_port);
    return static_cast<unsigned>(std::count_if(sockets.begin(), sockets.end(), [&](const auto& s) {
        return s.established && !listening.contains(s.local_port);
    }));
}

usage_sampler::usage_sampler() : cpu_start_(cpu_seconds()) {
    sample(0);
    thread_ = std::thread([this] {
        for (unsigned tick = 1; !stop_.load(std::memory_order_relaxed); ++tick) {
            std::this_thread::sleep_for(100ms);
            sample(tick);
        }
    });
}

usage_sampler::~usage_sampler() {
    finish();
}

void usage_sampler::sample(unsigned tick) {
    peak_.threads_peak = std::max(peak_.threads_peak, kt::process_thread_count());
    peak_.rss_peak = std::max(peak_.rss_peak, resident_bytes());
    // Connections change only on joins and closes and cost more to read: every 0.5 s.
    if (tick % 5 == 0)
        peak_.connections_peak = std::max(peak_.connections_peak, count_connections());
}

process_usage usage_sampler::finish() {
    if (thread_.joinable()) {
        stop_ = true;
        thread_.join();
        sample(0);
        peak_.cpu_seconds = cpu_seconds() - cpu_start_;
    }
    return peak_;
}

void release_free_memory() {
    ::malloc_trim(0);
}

machine_info describe_machine() {
    machine_info m;
    m.cores = std::thread::hardware_concurrency();
    m.cpu = after_colon(first_line_with("/proc/cpuinfo", "model name"));
    const auto total = after_colon(first_line_with("/proc/meminfo", "MemTotal"));
    m.memory_bytes = total.empty() ? 0 : std::stoll(total) * 1024;  // "<n> kB"
    std::string one, five, fifteen;
    std::ifstream("/proc/loadavg") >> one >> five >> fifteen;
    m.load_average = one + " " + five + " " + fifteen;
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    m.host = name;
    return m;
}

}  // namespace kt_bench
