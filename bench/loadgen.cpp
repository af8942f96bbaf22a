// SPDX-License-Identifier: BSD-3-Clause
// aotiplug-loadgen: the serving benchmark's client (bench/serving.py, docs/performance.md).
//
// A closed loop of C clients, each a thread with one keep-alive HTTP/1.1 connection to a
// Triton server, each sending the next inference request (KServe v2 with the binary tensor
// extension: a JSON header, then the raw input bytes; outputs asked for as binary) as soon as
// the last one is answered. Requests are numbered as they are sent, by all clients together:
// the first --warmup are not recorded, the next --requests are. Throughput counts the
// requests answered between the moment the first recorded one was sent and the moment a
// client found none left to send (all C clients busy throughout); latency percentiles are
// over every recorded request.
//
// Why not perf_analyzer: on a 2-core machine the client shares the cores with the server it
// measures, and perf_analyzer 2.51 took 91-123 µs of CPU per request at 16 clients (its
// worker threads, libcurl), about as much as the server it measured. This client is a
// blocking socket per thread and Boost.Beast's HTTP parser.
//
// Prints one JSON object: requests, errors (and the first error's text), seconds,
// infer_per_s, p50/p90/p99/mean latency in µs, and this process's CPU per request.
//
//   aotiplug-loadgen --url 127.0.0.1:8000 --model m --input INPUT__0:FP32:1,16 --concurrency 4 --requests 3000

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

struct Input {
  std::string name, datatype;
  std::vector<std::int64_t> shape;
};

// NAME:DATATYPE:D0,D1,... (the shape as sent, the batch dimension included).
Input parseInput(const std::string& spec) {
  const auto a = spec.find(':'), b = spec.find(':', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos) {
    throw std::invalid_argument("--input '" + spec + "': expected NAME:DATATYPE:D0,D1,...");
  }
  Input in{spec.substr(0, a), spec.substr(a + 1, b - a - 1), {}};
  std::stringstream dims(spec.substr(b + 1));
  for (std::string d; std::getline(dims, d, ',');) in.shape.push_back(std::stoll(d));
  if (in.shape.empty()) throw std::invalid_argument("--input '" + spec + "': no shape");
  return in;
}

std::size_t elementSize(const std::string& datatype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"UINT8", 1}, {"INT8", 1}, {"INT16", 2}, {"UINT16", 2}, {"FP16", 2}, {"BF16", 2},
      {"INT32", 4}, {"UINT32", 4}, {"FP32", 4}, {"INT64", 8}, {"UINT64", 8}, {"FP64", 8}};
  const auto it = sizes.find(datatype);
  if (it == sizes.end()) throw std::invalid_argument("--input datatype '" + datatype + "' is not a fixed-size KServe type");
  return it->second;
}

// The request body: the JSON header, then each input's bytes (FP32 uniform in [-1, 1), as
// perf_analyzer's random data; other types zeros).
std::string body(const std::vector<Input>& inputs, std::size_t* header_size) {
  nlohmann::json header = {{"inputs", nlohmann::json::array()}, {"parameters", {{"binary_data_output", true}}}};
  std::string data;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Input& in : inputs) {
    std::size_t n = elementSize(in.datatype);
    for (std::int64_t d : in.shape) n *= static_cast<std::size_t>(d);
    header["inputs"].push_back({{"name", in.name}, {"shape", in.shape}, {"datatype", in.datatype},
                                {"parameters", {{"binary_data_size", n}}}});
    const std::size_t at = data.size();
    data.resize(at + n, '\0');
    if (in.datatype == "FP32") {
      for (std::size_t e = 0; e < n / 4; ++e) {
        const float v = uniform(rng);
        std::memcpy(&data[at + e * 4], &v, 4);
      }
    }
  }
  std::string out = header.dump();
  *header_size = out.size();
  return out + data;
}

struct Shared {
  std::atomic<std::int64_t> next{0};  // the next request's number
  std::int64_t warmup = 0, requests = 0;
  std::atomic<std::int64_t> window_start_ns{0}, window_end_ns{0};
  std::mutex mutex;
  std::int64_t errors = 0;
  std::string first_error;

  void error(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (errors++ == 0) first_error = what;
  }
};

std::int64_t ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct Sample {
  std::int64_t end_ns;
  double latency_us;
  bool recorded;  // not a warm-up request
};

// One client: a connection, requests until the numbers run out.
void client(const asio::ip::tcp::resolver::results_type& endpoints, const http::request<http::string_body>& request,
            Shared& shared, std::vector<Sample>& samples) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  boost::beast::flat_buffer buffer;
  try {
    asio::connect(socket, endpoints);
    socket.set_option(asio::ip::tcp::no_delay(true));
  } catch (const std::exception& e) {
    shared.error(std::string("connecting: ") + e.what());
    return;
  }
  for (;;) {
    const std::int64_t number = shared.next.fetch_add(1);
    if (number >= shared.warmup + shared.requests) {
      if (number == shared.warmup + shared.requests) shared.window_end_ns = ns(Clock::now());
      return;
    }
    const Clock::time_point start = Clock::now();
    if (number == shared.warmup) shared.window_start_ns = ns(start);
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // Beast's default: 8 MB
    try {
      http::write(socket, request);
      http::read(socket, buffer, parser);
    } catch (const std::exception& e) {
      shared.error(std::string("request: ") + e.what());
      return;  // the connection is in an unknown state
    }
    const Clock::time_point end = Clock::now();
    const http::response<http::string_body>& response = parser.get();
    if (response.result() != http::status::ok) {
      shared.error("HTTP " + std::to_string(response.result_int()) + ": " + response.body().substr(0, 300));
    } else if (response.find("Inference-Header-Content-Length") == response.end()) {
      shared.error("a response without binary outputs: " + response.body().substr(0, 300));
    }
    samples.push_back({ns(end), std::chrono::duration<double, std::micro>(end - start).count(), number >= shared.warmup});
    if (!response.keep_alive()) {
      shared.error("the server closed the connection");
      return;
    }
  }
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description options("aotiplug-loadgen: a closed-loop KServe v2 HTTP load generator");
  std::string url, model;
  std::vector<std::string> input_specs;
  int concurrency = 1;
  std::int64_t requests = 1000, warmup = -1;
  options.add_options()("help", "this help")(
      "url", po::value(&url)->required(), "HOST:PORT of the server's HTTP endpoint")(
      "model", po::value(&model)->required(), "model name")(
      "input", po::value(&input_specs)->required(), "NAME:DATATYPE:D0,D1,... (repeat for each input)")(
      "concurrency", po::value(&concurrency), "clients (threads, connections), each one request in flight")(
      "requests", po::value(&requests), "requests recorded")(
      "warmup", po::value(&warmup), "requests sent first, by all clients together, and not recorded (default: 20 x concurrency)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    if (vm.count("help")) {
      std::cout << options << "\n";
      return 0;
    }
    po::notify(vm);
    if (concurrency < 1 || requests < 1) throw std::invalid_argument("--concurrency and --requests must be at least 1");
  } catch (const std::exception& e) {
    std::cerr << "aotiplug-loadgen: " << e.what() << "\n" << options << "\n";
    return 2;
  }
  if (warmup < 0) warmup = 20 * concurrency;

  std::vector<Input> inputs;
  std::size_t header_size = 0;
  http::request<http::string_body> request;
  asio::ip::tcp::resolver::results_type endpoints;
  try {
    for (const std::string& s : input_specs) inputs.push_back(parseInput(s));
    const auto colon = url.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("--url '" + url + "': expected HOST:PORT");
    asio::io_context io;
    endpoints = asio::ip::tcp::resolver(io).resolve(url.substr(0, colon), url.substr(colon + 1));
    request = http::request<http::string_body>(http::verb::post, "/v2/models/" + model + "/infer", 11);
    request.set(http::field::host, url);
    request.set(http::field::content_type, "application/octet-stream");
    request.body() = body(inputs, &header_size);
    request.set("Inference-Header-Content-Length", std::to_string(header_size));
    request.keep_alive(true);
    request.prepare_payload();
  } catch (const std::exception& e) {
    std::cerr << "aotiplug-loadgen: " << e.what() << "\n";
    return 2;
  }

  Shared shared;
  shared.warmup = warmup;
  shared.requests = requests;
  std::vector<std::vector<Sample>> samples(static_cast<std::size_t>(concurrency));
  for (auto& s : samples) s.reserve(static_cast<std::size_t>((warmup + requests) / concurrency + 16));
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back(client, std::cref(endpoints), std::cref(request), std::ref(shared), std::ref(samples[c]));
  }
  for (auto& t : threads) t.join();
  getrusage(RUSAGE_SELF, &after);

  const std::int64_t from = shared.window_start_ns, to = shared.window_end_ns;
  std::vector<double> latencies;
  std::int64_t in_window = 0;
  for (const auto& per_client : samples) {
    for (const Sample& s : per_client) {
      if (s.recorded) latencies.push_back(s.latency_us);
      in_window += s.end_ns >= from && s.end_ns <= to;
    }
  }
  std::sort(latencies.begin(), latencies.end());
  double mean = 0;
  for (double l : latencies) mean += l;
  mean = latencies.empty() ? 0.0 : mean / static_cast<double>(latencies.size());
  const double seconds = to > from ? static_cast<double>(to - from) / 1e9 : 0.0;
  auto cpu = [](const rusage& r) {
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
  };
  const std::int64_t sent = std::min<std::int64_t>(shared.next.load(), warmup + requests);
  // The error text may be cut mid-character: dump() replaces invalid UTF-8.
  const nlohmann::json result = {
      {"requests", latencies.size()}, {"errors", shared.errors}, {"first_error", shared.first_error},
      {"seconds", seconds}, {"infer_per_s", seconds > 0 ? static_cast<double>(in_window) / seconds : 0.0},
      {"p50_us", percentile(latencies, 50)}, {"p90_us", percentile(latencies, 90)},
      {"p99_us", percentile(latencies, 99)}, {"mean_us", mean},
      {"client_cpu_us_per_request", sent > 0 ? (cpu(after) - cpu(before)) / static_cast<double>(sent) * 1e6 : 0.0},
      {"concurrency", concurrency}};
  std::cout << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return shared.errors == 0 && !latencies.empty() ? 0 : 1;
}
