// kt-bench: runs the end-to-end scenarios side by side in one process and prints the table, the
// JSON file and the fan-out plot. `kt-bench --help` lists the options.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <cli.hpp>
#include <kt/log.hpp>

#include "bench.hpp"

namespace po = boost::program_options;

namespace kt_bench {

namespace {

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> parts;
    std::istringstream stream(text);
    for (std::string part; std::getline(stream, part, ',');)
        if (!part.empty()) parts.push_back(part);
    return parts;
}

/// The selected scenarios in run order; throws for an unknown name.
std::vector<std::string> select_scenarios(const std::string& list) {
    const auto wanted = split(list);
    for (const auto& name : wanted)
        if (std::find(all_scenarios.begin(), all_scenarios.end(), name) == all_scenarios.end())
            throw po::error(fmt::format("unknown scenario '{}' in --scenarios (use {})", name,
                                        fmt::join(all_scenarios, ",")));
    std::vector<std::string> selected;
    for (const auto& name : all_scenarios)
        if (std::find(wanted.begin(), wanted.end(), name) != wanted.end()) selected.push_back(name);
    return selected;
}

std::vector<unsigned> parse_counts(const std::string& list) {
    std::vector<unsigned> counts;
    for (const auto& part : split(list)) {
        const auto n = std::stoul(part);
        if (n == 0) throw po::error("--triggers counts must be positive");
        counts.push_back(static_cast<unsigned>(n));
    }
    std::sort(counts.begin(), counts.end());
    return counts;
}

std::optional<options> parse_options(int argc, char** argv) {
    options o;
    std::string scenarios = fmt::format("{}", fmt::join(all_scenarios, ",")), triggers;
    long messages = 0;
    unsigned rounds = 0;
    po::options_description desc(
        "kt-bench: end-to-end benchmarks of kafka-triggers against their alternatives, side by "
        "side in one run\nWithout --bootstrap it starts an embedded 3-broker cluster in this "
        "process.\nOptions");
    desc.add_options()("help,h", "show this help")("bootstrap", po::value(&o.bootstrap),
                                                   "Kafka bootstrap servers HOST:PORT[,...]")(
        "scenarios", po::value(&scenarios)->default_value(scenarios), "comma-separated subset")(
        "messages", po::value(&messages),
        "messages of the baseline and isolation topics; fan-out, latency and concurrency "
        "scale from it (default 200000, --quick 20000)")(
        "shards", po::value(&o.shards)->default_value(o.shards), "handler threads per runtime")(
        "poll-before-sleep", po::value(&o.poll_before_sleep_us)->default_value(0),
        "microseconds an idle shard polls before sleeping (kt::runtime_options)")(
        "rounds", po::value(&rounds),
        "alternating rounds of each side-by-side pair (default 3, --quick 1)")(
        "triggers", po::value(&triggers),
        "fan-out trigger counts (default 1,8,31,100, --quick 1,8)")(
        "latency-rate", po::value(&o.latency_rate)->default_value(o.latency_rate),
        "messages/s produced in the latency scenario")("json", po::value(&o.json_path),
                                                       "write the results to FILE as JSON")(
        "plot", po::value(&o.plot_path),
        "render the fan-out figures to FILE.svg with gnuplot (default: next to --json)")(
        "quick", po::bool_switch(&o.quick), "small sizes: done in under a minute")(
        "smoke", po::bool_switch(&o.smoke),
        "tiny sizes and the scenarios running at the same time: checks that everything works "
        "(the ctest smoke test); the figures mean nothing");
    if (!kt::cli::parse(argc, argv, desc)) return std::nullopt;
    o.scenarios = select_scenarios(scenarios);
    o.quick = o.quick || o.smoke;
    o.messages = messages > 0 ? messages : o.smoke ? 2000 : o.quick ? 20000 : 200000;
    o.rounds = rounds > 0 ? rounds : o.quick ? 1 : 3;
    if (triggers.empty()) triggers = o.smoke ? "2" : o.quick ? "1,8" : "1,8,31,100";
    o.fanout_triggers = parse_counts(triggers);
    if (o.shards == 0) throw po::error("--shards must be positive");
    // 100-byte values on 6 partitions: the embedded brokers keep ~5 MiB per partition log.
    if (o.bootstrap.empty() && o.messages > 250000)
        throw po::error(
            "the embedded cluster keeps ~5 MiB per partition: use --messages <= 250000 "
            "or --bootstrap");
    if (o.plot_path.empty() && !o.json_path.empty())
        o.plot_path = std::filesystem::path(o.json_path).replace_extension(".svg").string();
    o.progress = ::isatty(STDERR_FILENO) && !o.quick;
    return o;
}

/// One line on stderr, redrawn: scenario i of n, a bar, the step and the elapsed time.
class progress_bar {
  public:
    progress_bar(bool enabled, std::size_t scenarios) : enabled_(enabled), total_(scenarios) {}
    ~progress_bar() {
        if (enabled_) std::fputs("\r\033[K", stderr);
    }
    void begin(const std::string& scenario) {
        ++done_;
        scenario_ = scenario;
        note(scenario);
    }
    void note(const std::string& step) {
        if (!enabled_) return;
        constexpr std::size_t width = 20;
        const auto filled = width * (done_ - 1) / std::max<std::size_t>(total_, 1);
        const auto elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_);
        fmt::print(stderr, "\r\033[K[{}{}] {}/{} {:.0f}s  {}", std::string(filled, '#'),
                   std::string(width - filled, '.'), done_, total_, elapsed.count(), step);
        std::fflush(stderr);
    }

  private:
    bool enabled_;
    std::size_t total_;
    std::size_t done_ = 0;
    std::string scenario_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void run_scenario(const std::string& name, bench_cluster& cluster, const options& o,
                  const progress_note& note, bench_results& results) {
    if (name == "baseline") results.baseline = run_baseline(cluster, o, note);
    if (name == "fanout") results.fanout = run_fanout(cluster, o, note);
    if (name == "latency") results.latency = run_latency(cluster, o, note);
    if (name == "hop") results.hop = run_hop(o);
    if (name == "isolation") results.isolation = run_isolation(cluster, o, note);
    if (name == "concurrency") results.concurrency = run_concurrency(cluster, o, note);
}

void run_one_by_one(bench_cluster& cluster, const options& o, bench_results& results) {
    progress_bar bar(o.progress, o.scenarios.size());
    const progress_note note = [&bar](const std::string& step) { bar.note(step); };
    for (const auto& name : o.scenarios) {
        bar.begin(name);
        run_scenario(name, cluster, o, note, results);
    }
}

/// --smoke: every scenario on a thread of its own, so the group joins (~3 s each on the embedded
/// cluster) overlap. Each writes only its own member of `results`.
void run_all_at_once(bench_cluster& cluster, const options& o, bench_results& results) {
    const progress_note quiet = [](const std::string&) {};
    std::vector<std::future<void>> running;
    for (const auto& name : o.scenarios)
        running.push_back(std::async(
            std::launch::async, [&, name] { run_scenario(name, cluster, o, quiet, results); }));
    for (auto& scenario : running) scenario.get();
}

int run(const options& o) {
    kt::set_log_level(kt::log_level::warning);
    const auto machine = describe_machine();
    bench_cluster cluster(o.bootstrap);
    const auto description = cluster.embedded()
                                 ? std::string(
                                       "embedded, 3 brokers in this process (consumers "
                                       "use fetch.wait.max.ms=10, see bench.hpp)")
                                 : fmt::format("bootstrap {}", cluster.bootstrap());
    bench_results results;
    if (o.smoke)
        run_all_at_once(cluster, o, results);
    else
        run_one_by_one(cluster, o, results);
    print_report(results, o, machine, description);
    if (!o.json_path.empty()) {
        write_json(results, o, machine, description, o.json_path);
        fmt::print("json: {}\n", o.json_path);
    }
    if (results.fanout && !o.plot_path.empty()) write_plot(*results.fanout, o.plot_path);
    return 0;
}

}  // namespace

}  // namespace kt_bench

int main(int argc, char** argv) {
    try {
        auto o = kt_bench::parse_options(argc, argv);
        return o ? kt_bench::run(*o) : 0;
    } catch (const po::error& e) {
        std::cerr << "kt-bench: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "kt-bench: error: " << e.what() << '\n';
        return 1;
    }
}
