// kt-bench's output: the table on stdout, the JSON file, the DESIGN §7 targets next to what was
// measured, and the gnuplot rendering of the fan-out figures.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "bench.hpp"

namespace json = boost::json;

namespace kt_bench {

namespace {

constexpr double mib = 1024.0 * 1024.0;

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

double median_ratio(const std::vector<rate_pair>& rounds) {
    std::vector<double> ratios;
    for (const auto& r : rounds) ratios.push_back(r.ratio());
    return median(ratios);
}

const char* sharing_name(kt::sharing mode) {
    return mode == kt::sharing::off ? "off" : "per_group";
}

/// A fan-out run's figures above the idle baseline (the embedded cluster lives in this process).
struct above_idle {
    double threads;
    double rss_bytes;
};
above_idle above(const fanout_result& f, const fanout_run& run) {
    return {static_cast<double>(run.usage.threads_peak) - f.idle.threads_peak,
            static_cast<double>(run.usage.rss_peak - f.idle.rss_peak)};
}

/// Shared vs separate consumers at one trigger count.
struct sharing_comparison {
    unsigned triggers;
    double threads_ratio;  ///< shared / separate, above idle
    double rss_ratio;
    double cpu_ratio;
    double throughput_ratio;
};

std::vector<sharing_comparison> compare_sharing(const fanout_result& f) {
    std::map<unsigned, std::pair<const fanout_run*, const fanout_run*>> by_count;
    for (const auto& run : f.runs)
        (run.sharing == kt::sharing::off ? by_count[run.triggers].second
                                         : by_count[run.triggers].first) = &run;
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::vector<sharing_comparison> comparisons;
    for (const auto& [triggers, pair] : by_count) {
        const auto [shared, separate] = pair;
        if (!shared || !separate) continue;
        comparisons.push_back({triggers,
                               ratio(above(f, *shared).threads, above(f, *separate).threads),
                               ratio(above(f, *shared).rss_bytes, above(f, *separate).rss_bytes),
                               ratio(shared->usage.cpu_seconds, separate->usage.cpu_seconds),
                               ratio(shared->deliveries_per_s, separate->deliveries_per_s)});
    }
    return comparisons;
}

struct target_check {
    std::string what;
    std::string target;
    double measured;
    std::string shown;  ///< measured, formatted
    bool met;
};

void check_fanout_targets(const fanout_result& f, std::vector<target_check>& checks) {
    const auto comparisons = compare_sharing(f);
    if (comparisons.empty()) return;
    const auto& c = comparisons.back();  // the largest trigger count (100 in the full run)
    checks.push_back({fmt::format("{} triggers: threads shared / separate consumers", c.triggers),
                      "<= 3 %", c.threads_ratio, fmt::format("{:.1f} %", 100 * c.threads_ratio),
                      c.threads_ratio <= 0.03});
    checks.push_back({fmt::format("{} triggers: RSS shared / separate consumers", c.triggers),
                      "<= 20 %", c.rss_ratio, fmt::format("{:.1f} %", 100 * c.rss_ratio),
                      c.rss_ratio <= 0.20});
}

std::vector<target_check> check_targets(const bench_results& r) {
    std::vector<target_check> checks;
    if (r.baseline) {
        const double ratio = median_ratio(r.baseline->rounds);
        checks.push_back({"throughput: 1 no-op trigger / raw librdkafka loop", ">= 0.95", ratio,
                          fmt::format("{:.3f}", ratio), ratio >= 0.95});
    }
    if (r.fanout) check_fanout_targets(*r.fanout, checks);
    if (r.hop) {
        const auto& h = r.hop->hop;
        checks.push_back({"channel hop p50 at 10k msg/s", "<= 5 us", h.p50_us,
                          fmt::format("{:.1f} us", h.p50_us), h.p50_us <= 5});
        checks.push_back({"channel hop p99 at 10k msg/s", "<= 50 us", h.p99_us,
                          fmt::format("{:.1f} us", h.p99_us), h.p99_us <= 50});
        const auto& p = r.hop->polling;
        const auto polling = fmt::format(" (shard polls {:.0f} us)", r.hop->poll_before_sleep_us);
        checks.push_back({"channel hop p50 at 10k msg/s" + polling, "<= 5 us", p.p50_us,
                          fmt::format("{:.1f} us", p.p50_us), p.p50_us <= 5});
        checks.push_back({"channel hop p99 at 10k msg/s" + polling, "<= 50 us", p.p99_us,
                          fmt::format("{:.1f} us", p.p99_us), p.p99_us <= 50});
    }
    if (r.isolation) {
        const double ratio = median_ratio(r.isolation->rounds);
        checks.push_back({"isolation: fast trigger beside a 100 ms trigger / alone", ">= 0.95",
                          ratio, fmt::format("{:.3f}", ratio), ratio >= 0.95});
    }
    if (r.concurrency)
        for (const auto& run : r.concurrency->runs)
            if (run.ordering == "key")
                checks.push_back({"key-ordered, 1000 keys, 10 ms handler, 256 in flight",
                                  ">= 15000 msg/s", run.msgs_per_s,
                                  fmt::format("{:.0f} msg/s", run.msgs_per_s),
                                  run.msgs_per_s >= 15000});
    return checks;
}

std::string utc_now() {
    const auto now = std::time(nullptr);
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

// ---- table ---------------------------------------------------------------------------------

void print_pairs(const std::vector<rate_pair>& rounds, const char* alternative, const char* ours) {
    fmt::print("  {:>5}  {:>22}  {:>22}  {:>6}\n", "round", alternative, ours, "ratio");
    for (std::size_t i = 0; i < rounds.size(); ++i)
        fmt::print("  {:>5}  {:>16.0f} msgs/s  {:>16.0f} msgs/s  {:>6.3f}\n", i + 1,
                   rounds[i].alternative, rounds[i].ours, rounds[i].ratio());
    fmt::print("  median ratio {:.3f}\n", median_ratio(rounds));
}

void print_baseline(const baseline_result& b) {
    fmt::print(
        "\nbaseline: raw librdkafka consume loop (the ceiling) vs 1 no-op trigger, {} x 100 B "
        "on 6 partitions, timed from every partition flowing to the last message\n",
        b.messages);
    print_pairs(b.rounds, "raw loop", "1 trigger");
}

void print_fanout(const fanout_result& f) {
    fmt::print(
        "\nfan-out: N no-op triggers on one topic ({} x 100 B each), consumers shared "
        "(per_group) vs one per trigger (off)\n",
        f.messages);
    fmt::print(
        "  idle baseline before any consumer (embedded cluster, main and sampler threads): "
        "{} threads, RSS {:.1f} MiB, {} connections; threads and RSS below are above it\n",
        f.idle.threads_peak, f.idle.rss_peak / mib, f.idle.connections_peak);
    fmt::print("  {:>4}  {:<9}  {:>9}  {:>14}  {:>7}  {:>7}  {:>9}  {:>11}  {:>9}\n", "N",
               "sharing", "consumers", "deliveries/s", "CPU s", "threads", "RSS MiB", "connections",
               "handled");
    for (const auto& run : f.runs) {
        const auto extra = above(f, run);
        fmt::print(
            "  {:>4}  {:<9}  {:>9}  {:>14.0f}  {:>7.2f}  {:>7.0f}  {:>9.1f}  {:>11}  {:>9}\n",
            run.triggers, sharing_name(run.sharing), run.consumers, run.deliveries_per_s,
            run.usage.cpu_seconds, extra.threads, extra.rss_bytes / mib, run.usage.connections_peak,
            run.handled);
    }
    for (const auto& c : compare_sharing(f))
        fmt::print(
            "  N={:<3} shared / separate: threads {:5.1f} %, RSS {:5.1f} %, CPU {:5.1f} %, "
            "throughput x{:.2f}\n",
            c.triggers, 100 * c.threads_ratio, 100 * c.rss_ratio, 100 * c.cpu_ratio,
            c.throughput_ratio);
    fmt::print(
        "  CPU s: process CPU (cluster included) from host creation to the last message; "
        "connections: established client TCP sockets of the process (brokers' accepted "
        "ends excluded)\n");
}

void print_percentiles(const char* what, long received, const percentiles& p) {
    fmt::print("  {:<34} {:>7} msgs  p50 {:>9.1f} us  p99 {:>9.1f} us  p999 {:>9.1f} us\n", what,
               received, p.p50_us, p.p99_us, p.p999_us);
}

void print_latency(const latency_result& l) {
    fmt::print("\nlatency: produce -> handler start, {} msgs at {:.0f} msg/s (linger.ms=0)\n",
               l.messages, l.rate);
    print_percentiles("raw librdkafka loop (poll returned)", l.raw_received, l.raw);
    print_percentiles("1 trigger (handler started)", l.trigger_received, l.trigger);
}

void print_hop(const hop_result& h) {
    fmt::print(
        "\nchannel hop: kt::spsc_channel push -> popped by a coroutine on a kt::runtime shard, "
        "paced "
        "at {:.0f} msg/s\n",
        h.rate);
    print_percentiles("shard sleeps when idle (default)", h.hop.samples, h.hop);
    print_percentiles(fmt::format("shard polls {:.0f} us first", h.poll_before_sleep_us).c_str(),
                      h.polling.samples, h.polling);
    fmt::print("  process CPU: {:.2f} s sleeping vs {:.2f} s polling (poll_before_sleep)\n",
               h.cpu_seconds, h.polling_cpu_seconds);
}

void print_isolation(const isolation_result& i) {
    fmt::print(
        "\nisolation: no-op trigger alone vs sharing its consumer with a 100 ms trigger on "
        "another topic, {} x 100 B ({} slow handlers started in the last round)\n",
        i.messages, i.slow_started);
    print_pairs(i.rounds, "alone", "beside slow");
}

void print_concurrency(const concurrency_result& c) {
    fmt::print(
        "\nconcurrency: 1 partition, 1000 keys, {} ms async handler, max_in_flight {} "
        "(ceiling {:.0f} msg/s)\n",
        c.handler_time.count(), c.max_in_flight,
        c.max_in_flight * 1000.0 / static_cast<double>(c.handler_time.count()));
    for (const auto& run : c.runs)
        fmt::print("  {:<10}-ordered  {:>6} msgs  {:>9.0f} msg/s\n", run.ordering, run.handled,
                   run.msgs_per_s);
}

void print_targets(const std::vector<target_check>& checks) {
    if (checks.empty()) return;
    fmt::print("\nDESIGN §7 targets\n");
    for (const auto& c : checks)
        fmt::print("  {:<58} target {:<15} measured {:<14} {}\n", c.what, c.target, c.shown,
                   c.met ? "met" : "MISSED");
}

// ---- JSON ----------------------------------------------------------------------------------

json::object to_json(const process_usage& u) {
    return {{"cpu_seconds", u.cpu_seconds},
            {"threads_peak", u.threads_peak},
            {"rss_peak_bytes", u.rss_peak},
            {"connections_peak", u.connections_peak}};
}

json::object to_json(const percentiles& p) {
    return {
        {"samples", p.samples}, {"p50_us", p.p50_us}, {"p99_us", p.p99_us}, {"p999_us", p.p999_us}};
}

json::array to_json(const std::vector<rate_pair>& rounds, const char* alternative,
                    const char* ours) {
    json::array array;
    for (const auto& r : rounds)
        array.push_back(
            json::object{{alternative, r.alternative}, {ours, r.ours}, {"ratio", r.ratio()}});
    return array;
}

json::object to_json(const baseline_result& b) {
    return {{"messages", b.messages},
            {"raw_received", b.raw_received},
            {"trigger_received", b.trigger_received},
            {"rounds", to_json(b.rounds, "raw_msgs_per_s", "trigger_msgs_per_s")},
            {"median_ratio", median_ratio(b.rounds)}};
}

json::object to_json(const fanout_result& f) {
    json::array runs;
    for (const auto& run : f.runs) {
        auto object = to_json(run.usage);
        object["triggers"] = run.triggers;
        object["sharing"] = sharing_name(run.sharing);
        object["expected"] = run.expected;
        object["handled"] = run.handled;
        object["deliveries_per_s"] = run.deliveries_per_s;
        object["consumers"] = run.consumers;
        object["threads_above_idle"] = above(f, run).threads;
        object["rss_above_idle_bytes"] = above(f, run).rss_bytes;
        runs.push_back(std::move(object));
    }
    json::array comparisons;
    for (const auto& c : compare_sharing(f))
        comparisons.push_back(json::object{{"triggers", c.triggers},
                                           {"threads_ratio", c.threads_ratio},
                                           {"rss_ratio", c.rss_ratio},
                                           {"cpu_ratio", c.cpu_ratio},
                                           {"throughput_ratio", c.throughput_ratio}});
    return {{"messages_per_trigger", f.messages},
            {"idle", to_json(f.idle)},
            {"runs", std::move(runs)},
            {"shared_vs_separate", std::move(comparisons)}};
}

json::object to_json(const latency_result& l) {
    auto raw = to_json(l.raw);
    raw["received"] = l.raw_received;
    auto trigger = to_json(l.trigger);
    trigger["received"] = l.trigger_received;
    return {{"messages", l.messages}, {"rate", l.rate}, {"raw", raw}, {"trigger", trigger}};
}

json::object to_json(const hop_result& h) {
    auto object = to_json(h.hop);
    object["rate"] = h.rate;
    object["pushed"] = h.pushed;
    object["cpu_seconds"] = h.cpu_seconds;
    auto polling = to_json(h.polling);
    polling["poll_before_sleep_us"] = h.poll_before_sleep_us;
    polling["cpu_seconds"] = h.polling_cpu_seconds;
    object["polling"] = std::move(polling);
    return object;
}

json::object to_json(const isolation_result& i) {
    return {{"messages", i.messages},
            {"received", i.received},
            {"slow_started", i.slow_started},
            {"rounds", to_json(i.rounds, "alone_msgs_per_s", "beside_slow_msgs_per_s")},
            {"median_ratio", median_ratio(i.rounds)}};
}

json::object to_json(const concurrency_result& c) {
    json::array runs;
    for (const auto& run : c.runs)
        runs.push_back(json::object{{"ordering", run.ordering},
                                    {"produced", run.messages},
                                    {"handled", run.handled},
                                    {"msgs_per_s", run.msgs_per_s}});
    return {{"max_in_flight", c.max_in_flight},
            {"handler_ms", c.handler_time.count()},
            {"runs", std::move(runs)}};
}

json::object scenarios_json(const bench_results& r) {
    json::object scenarios;
    if (r.baseline) scenarios["baseline"] = to_json(*r.baseline);
    if (r.fanout) scenarios["fanout"] = to_json(*r.fanout);
    if (r.latency) scenarios["latency"] = to_json(*r.latency);
    if (r.hop) scenarios["hop"] = to_json(*r.hop);
    if (r.isolation) scenarios["isolation"] = to_json(*r.isolation);
    if (r.concurrency) scenarios["concurrency"] = to_json(*r.concurrency);
    return scenarios;
}

json::object run_json(const options& o, const machine_info& m, const std::string& cluster) {
    json::array selected;
    for (const auto& s : o.scenarios) selected.push_back(json::string(s));
    return {{"date", utc_now()},
            {"machine",
             {{"host", m.host},
              {"cores", m.cores},
              {"cpu", m.cpu},
              {"memory_bytes", m.memory_bytes},
              {"load_average_at_start", m.load_average}}},
            {"cluster", cluster},
            {"config",
             {{"messages", o.messages},
              {"shards", o.shards},
              {"poll_before_sleep_us", o.poll_before_sleep_us},
              {"rounds", o.rounds},
              {"quick", o.quick},
              {"scenarios", std::move(selected)}}}};
}

bool on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    if (!path) return false;
    std::string_view rest(path);
    while (!rest.empty()) {
        const auto colon = rest.find(':');
        const auto dir = rest.substr(0, colon);
        if (::access((std::string(dir) + "/" + program).c_str(), X_OK) == 0) return true;
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    }
    return false;
}

}  // namespace

void print_report(const bench_results& r, const options& o, const machine_info& m,
                  const std::string& cluster) {
    fmt::print("kt-bench {}: {} ({} cores, {}, {:.1f} GiB RAM, load {} at start)\n", utc_now(),
               m.host, m.cores, m.cpu, m.memory_bytes / (1024.0 * mib), m.load_average);
    fmt::print("cluster: {}; {} shards{}; {} round(s) per side-by-side pair\n", cluster, o.shards,
               o.poll_before_sleep_us
                   ? fmt::format(" polling {} us before sleeping", o.poll_before_sleep_us)
                   : std::string{},
               o.rounds);
    if (o.quick)
        fmt::print("--quick: most runs last well under a second, so ratios are indicative only\n");
    if (r.baseline) print_baseline(*r.baseline);
    if (r.fanout) print_fanout(*r.fanout);
    if (r.latency) print_latency(*r.latency);
    if (r.hop) print_hop(*r.hop);
    if (r.isolation) print_isolation(*r.isolation);
    if (r.concurrency) print_concurrency(*r.concurrency);
    print_targets(check_targets(r));
    std::fflush(stdout);
}

void write_json(const bench_results& r, const options& o, const machine_info& m,
                const std::string& cluster, const std::string& path) {
    auto document = run_json(o, m, cluster);
    document["scenarios"] = scenarios_json(r);
    json::array targets;
    for (const auto& c : check_targets(r))
        targets.push_back(json::object{
            {"what", c.what}, {"target", c.target}, {"measured", c.measured}, {"met", c.met}});
    document["targets"] = std::move(targets);
    std::ofstream file(path);
    file << json::serialize(document) << '\n';
    if (!file) throw std::runtime_error("cannot write " + path);
}

void write_plot(const fanout_result& f, const std::string& svg_path) {
    const auto data_path = std::filesystem::path(svg_path).replace_extension(".dat").string();
    {
        std::ofstream data(data_path);
        data << "# triggers sharing(0=per_group,1=off) threads_above_idle rss_above_idle_mib "
                "deliveries_per_s\n";
        for (auto mode : {kt::sharing::per_group, kt::sharing::off}) {
            data << "# " << sharing_name(mode) << '\n';
            for (const auto& run : f.runs)
                if (run.sharing == mode)
                    data << fmt::format("{} {} {:.0f} {:.1f} {:.0f}\n", run.triggers,
                                        mode == kt::sharing::off ? 1 : 0, above(f, run).threads,
                                        above(f, run).rss_bytes / mib, run.deliveries_per_s);
            data << "\n\n";  // gnuplot data set separator: index 0 shared, index 1 separate
        }
    }
    if (!on_path("gnuplot")) {
        fmt::print("plot skipped: gnuplot not found (data in {})\n", data_path);
        return;
    }
    FILE* gnuplot = ::popen("gnuplot", "w");
    if (!gnuplot) return;
    fmt::print(gnuplot,
               "set terminal svg size 1200,400 dynamic\n"
               "set output '{0}'\n"
               "set multiplot layout 1,3 title 'kt-bench fan-out: N triggers, shared consumer vs "
               "one consumer per trigger (above the idle embedded cluster)'\n"
               "set logscale x\nset xlabel 'triggers'\nset key top left\nset grid\n"
               "set title 'threads'\n"
               "plot '{1}' index 0 using 1:3 with linespoints title 'shared (per_group)', "
               "'{1}' index 1 using 1:3 with linespoints title 'separate (off)'\n"
               "set title 'RSS (MiB)'\n"
               "plot '{1}' index 0 using 1:4 with linespoints title 'shared (per_group)', "
               "'{1}' index 1 using 1:4 with linespoints title 'separate (off)'\n"
               "set title 'handler calls per second'\n"
               "plot '{1}' index 0 using 1:5 with linespoints title 'shared (per_group)', "
               "'{1}' index 1 using 1:5 with linespoints title 'separate (off)'\n"
               "unset multiplot\n",
               svg_path, data_path);
    if (::pclose(gnuplot) != 0)
        fmt::print("plot: gnuplot failed (data in {})\n", data_path);
    else
        fmt::print("plot: {}\n", svg_path);
}

}  // namespace kt_bench
