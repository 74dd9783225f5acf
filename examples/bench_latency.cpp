// fasttopk_bench_cpp: GPU time per call and host-side cost of one topk() call.
//
// For each shape:
//   graph us    N calls captured in one CUDA graph, the graph replayed R times,
//               each replay timed with CUDA events: median replay / N (cache-warm:
//               every call reads the same input).
//   cold us     the same, the calls rotating over enough input buffers that more
//               than 2x the L2 size lies between two reads of one buffer (inputs
//               under 2x L2 only).
//   eager us    a host loop of topk() calls, stream synchronised, wall clock /
//               calls; median of several loops.
//   enqueue us  host time of one topk() call (validation, dispatch, launch),
//               median and 90th percentile over many calls, the stream drained
//               between batches outside the timed region. The target is < 3 us.
//   check       the GPU result against topk_host on the same input: bitwise equal.
//
// Usage: fasttopk_bench_cpp [--rows R --cols C --k K [--dtype fp32|fp16|bf16]]
//                           [--algo NAME] [--index int32|int64] [--calls N]
//                           [--replays R] [--enqueue-calls M] [--no-check] [--no-cold]
//                           [--descending] [--input-offset BYTES] [--seed N]
// --descending sorts every row largest first (the top k all at the row's
// start: the case where row_per_warp's guessed threshold fails on every row).
// --input-offset places the (warm) input BYTES past the start of its
// allocation (a multiple of 4 bytes; default 0), to test whether a time
// depends on where the input lies in memory. --seed sets the first shape's
// input seed (each further shape takes the next one): times that depend on
// the values show up as differences between seeds.
// Without a shape: the latency table's shapes. Exit status 1 on a failed check
// or an error.
#include <fasttopk/fasttopk.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

#define CUDA_OK(call)                                                           \
  do {                                                                          \
    cudaError_t e_ = (call);                                                    \
    if (e_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(e_));                                     \
      std::exit(2);                                                             \
    }                                                                           \
  } while (0)

using fasttopk::Algorithm;
using fasttopk::DType;
using fasttopk::IndexType;
using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t rows;
  int64_t cols;
  int64_t k;
  DType dtype;
};

struct Options {
  std::vector<Shape> shapes;
  Algorithm algorithm = Algorithm::kAuto;
  IndexType index_type = IndexType::kInt64;
  int calls = 20;
  int replays = 15;
  int eager_calls = 20;
  int eager_loops = 7;
  int enqueue_calls = 5000;
  bool check = true;
  bool cold = true;
  bool descending = false;   // rows sorted largest first
  int64_t input_offset = 0;  // bytes between the allocation's start and the warm input
  uint64_t seed = 0x5eed;    // the first shape's input seed
};

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
  }
  return "?";
}

int dtype_bytes(DType d) { return d == DType::kFloat32 ? 4 : 2; }

bool parse_dtype(const std::string& s, DType* d) {
  if (s == "fp32" || s == "float32")
    *d = DType::kFloat32;
  else if (s == "fp16" || s == "float16")
    *d = DType::kFloat16;
  else if (s == "bf16" || s == "bfloat16")
    *d = DType::kBFloat16;
  else
    return false;
  return true;
}

uint16_t float_to_bf16(float f) {  // round to nearest even (finite inputs)
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

uint16_t float_to_half(float f) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t e = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (e == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int exp = static_cast<int>(e) - 127 + 15;
  if (exp >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rounds up the exponent
  return static_cast<uint16_t>(h);
}

/// rows x cols standard-normal values in the dtype's storage (never zeros),
/// each row sorted largest first when `descending`.
std::vector<unsigned char> make_input(const Shape& s, uint64_t seed, bool descending) {
  const int64_t n = s.rows * s.cols;
  std::vector<unsigned char> bytes(static_cast<size_t>(n) * dtype_bytes(s.dtype));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(s.cols));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % s.cols;
    if (c == 0) {
      for (float& x : row) x = normal(rng);
      if (descending) std::sort(row.begin(), row.end(), [](float a, float b) { return a > b; });
    }
    const float v = row[static_cast<size_t>(c)];
    if (s.dtype == DType::kFloat32) {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = s.dtype == DType::kFloat16 ? float_to_half(v) : float_to_bf16(v);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

bool check_status(const fasttopk::Status& s, const char* what, std::string* error) {
  if (s.ok()) return true;
  *error = std::string(what) + ": " + fasttopk::status_code_name(s.code()) + ": " + s.message();
  return false;
}

struct Row {
  Shape shape;
  std::string algorithm = "?";
  size_t workspace = 0;
  double graph_us = NAN;
  double cold_us = NAN;
  int cold_buffers = 0;
  double eager_us = NAN;
  double enqueue_median = NAN;
  double enqueue_p90 = NAN;
  double enqueue_min = NAN;
  double workspace_size_us = NAN;
  std::string check = "-";
  std::string error;
};

/// Per-call µs of `params_list` (one topk call each, in order) captured in one graph.
bool graph_time(const std::vector<fasttopk::TopKParams>& params_list, void* workspace,
                size_t workspace_bytes, cudaStream_t stream, int replays, double* us,
                std::string* error) {
  cudaGraph_t graph = nullptr;
  // Thread-local capture mode: other threads' CUDA calls stay legal meanwhile.
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  fasttopk::Status status;
  for (const auto& p : params_list) {
    status = fasttopk::topk(p, workspace, workspace_bytes, stream);
    if (!status.ok()) break;
  }
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (!check_status(status, "topk during capture", error)) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return false;
  }
  if (end != cudaSuccess) {
    *error = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    return false;
  }
  cudaGraphExec_t exec = nullptr;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_OK(cudaGraphLaunch(exec, stream));  // warm-up (uploads the graph)
  CUDA_OK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  std::vector<double> times;
  for (int r = 0; r < replays; ++r) {
    CUDA_OK(cudaEventRecord(start, stream));
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaEventRecord(stop, stream));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms * 1e3 / static_cast<double>(params_list.size()));
  }
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));
  *us = median(times);
  return true;
}

Row run_shape(const Shape& s, const Options& o, cudaStream_t stream, size_t l2_bytes,
              uint64_t seed) {
  Row row;
  row.shape = s;
  const size_t in_bytes = static_cast<size_t>(s.rows * s.cols) * dtype_bytes(s.dtype);
  const size_t out_n = static_cast<size_t>(s.rows * s.k);
  const int index_bytes = o.index_type == IndexType::kInt64 ? 8 : 4;
  const std::vector<unsigned char> host_in = make_input(s, seed, o.descending);

  void* d_alloc = nullptr;
  void* d_values = nullptr;
  void* d_indices = nullptr;
  CUDA_OK(cudaMalloc(&d_alloc, in_bytes + static_cast<size_t>(o.input_offset)));
  void* const d_in = static_cast<unsigned char*>(d_alloc) + o.input_offset;
  std::fprintf(stderr, "    input at %p\n", d_in);
  CUDA_OK(cudaMalloc(&d_values, std::max<size_t>(1, out_n * dtype_bytes(s.dtype))));
  CUDA_OK(cudaMalloc(&d_indices, std::max<size_t>(1, out_n * index_bytes)));
  CUDA_OK(cudaMemcpy(d_in, host_in.data(), in_bytes, cudaMemcpyHostToDevice));

  fasttopk::TopKParams p;
  p.input = d_in;
  p.dtype = s.dtype;
  p.rows = s.rows;
  p.cols = s.cols;
  p.k = s.k;
  p.values = d_values;
  p.indices = d_indices;
  p.index_type = o.index_type;
  p.algorithm = o.algorithm;

  void* workspace = nullptr;
  void* pool = nullptr;
  auto cleanup = [&]() {
    if (pool != nullptr) cudaFree(pool);
    if (workspace != nullptr) cudaFree(workspace);
    cudaFree(d_indices);
    cudaFree(d_values);
    cudaFree(d_alloc);
  };

  Algorithm chosen = Algorithm::kAuto;
  if (!check_status(fasttopk::chosen_algorithm(p, &chosen), "chosen_algorithm", &row.error) ||
      !check_status(fasttopk::workspace_size(p, &row.workspace), "workspace_size", &row.error)) {
    cleanup();
    return row;
  }
  row.algorithm = fasttopk::algorithm_name(chosen);
  if (row.workspace > 0) CUDA_OK(cudaMalloc(&workspace, row.workspace));

  // Correctness: the GPU result equals the CPU path's bit for bit.
  if (o.check) {
    if (!check_status(fasttopk::topk(p, workspace, row.workspace, stream), "topk", &row.error)) {
      cleanup();
      return row;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<unsigned char> gpu_v(out_n * dtype_bytes(s.dtype)), gpu_i(out_n * index_bytes);
    CUDA_OK(cudaMemcpy(gpu_v.data(), d_values, gpu_v.size(), cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gpu_i.data(), d_indices, gpu_i.size(), cudaMemcpyDeviceToHost));
    std::vector<unsigned char> cpu_v(gpu_v.size()), cpu_i(gpu_i.size());
    fasttopk::TopKParams h = p;
    h.input = host_in.data();
    h.values = cpu_v.data();
    h.indices = cpu_i.data();
    h.algorithm = Algorithm::kAuto;
    size_t host_bytes = 0;
    std::string herr;
    if (check_status(fasttopk::host_workspace_size(h, 0, &host_bytes), "host_workspace_size",
                     &herr)) {
      std::vector<uint64_t> host_ws((host_bytes + 7) / 8);
      if (check_status(fasttopk::topk_host(h, host_ws.data(), host_bytes, 0), "topk_host", &herr)) {
        row.check = (gpu_v == cpu_v && gpu_i == cpu_i) ? "ok" : "FAIL: GPU != CPU";
      }
    }
    if (!herr.empty()) row.check = "FAIL: " + herr;
  }

  // Cache-warm graph.
  std::vector<fasttopk::TopKParams> warm(o.calls, p);
  if (!graph_time(warm, workspace, row.workspace, stream, o.replays, &row.graph_us, &row.error)) {
    cleanup();
    return row;
  }

  // Cache-cold graph: rotate over > 2x L2 of inputs.
  const size_t cold_target = std::max<size_t>(2 * l2_bytes, 100u * 1000u * 1000u);
  if (o.cold && in_bytes < cold_target) {
    size_t buffers = std::max<size_t>(o.calls, cold_target / in_bytes + 2);
    buffers = std::min<size_t>(buffers, 4096);
    // Each buffer starts at a 256-byte boundary.
    const size_t pitch = (in_bytes + 255) / 256 * 256;
    CUDA_OK(cudaMalloc(&pool, pitch * buffers));
    std::vector<fasttopk::TopKParams> cold(buffers, p);
    for (size_t b = 0; b < buffers; ++b) {
      unsigned char* dst = static_cast<unsigned char*>(pool) + b * pitch;
      CUDA_OK(cudaMemcpyAsync(dst, d_in, in_bytes, cudaMemcpyDeviceToDevice, stream));
      cold[b].input = dst;
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    row.cold_buffers = static_cast<int>(buffers);
    if (!graph_time(cold, workspace, row.workspace, stream, o.replays, &row.cold_us, &row.error)) {
      cleanup();
      return row;
    }
    CUDA_OK(cudaFree(pool));
    pool = nullptr;
  } else {
    row.cold_us = row.graph_us;  // already larger than 2x L2: DRAM-bound either way
  }

  // Eager loop.
  {
    std::vector<double> loops;
    for (int l = 0; l < o.eager_loops; ++l) {
      CUDA_OK(cudaStreamSynchronize(stream));
      const auto t0 = Clock::now();
      for (int i = 0; i < o.eager_calls; ++i) fasttopk::topk(p, workspace, row.workspace, stream);
      CUDA_OK(cudaStreamSynchronize(stream));
      loops.push_back(us_since(t0) / o.eager_calls);
    }
    row.eager_us = median(loops);
  }

  // Host-side cost of one call: the stream is drained every `batch` calls,
  // outside the timed region, so the launch queue never fills up.
  {
    constexpr int kBatch = 32;
    std::vector<double> enqueue, wsize;
    enqueue.reserve(o.enqueue_calls);
    wsize.reserve(o.enqueue_calls);
    for (int i = 0; i < o.enqueue_calls; ++i) {
      if (i % kBatch == 0) CUDA_OK(cudaStreamSynchronize(stream));
      auto t0 = Clock::now();
      fasttopk::topk(p, workspace, row.workspace, stream);
      enqueue.push_back(us_since(t0));
      size_t bytes = 0;
      t0 = Clock::now();
      fasttopk::workspace_size(p, &bytes);
      wsize.push_back(us_since(t0));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    // Drop the first batch (warm-up of caches and branch predictors).
    if (enqueue.size() > static_cast<size_t>(2 * kBatch)) {
      enqueue.erase(enqueue.begin(), enqueue.begin() + kBatch);
      wsize.erase(wsize.begin(), wsize.begin() + kBatch);
    }
    row.enqueue_median = median(enqueue);
    row.enqueue_p90 = percentile(enqueue, 0.9);
    row.enqueue_min = percentile(enqueue, 0.0);
    row.workspace_size_us = median(wsize);
  }
  CUDA_OK(cudaGetLastError());
  cleanup();
  return row;
}

/// Host cost of a plain runtime call that enqueues device work, for scale.
double memset_host_cost(cudaStream_t stream) {
  void* p = nullptr;
  CUDA_OK(cudaMalloc(&p, 256));
  std::vector<double> t;
  for (int i = 0; i < 2000; ++i) {
    if (i % 32 == 0) CUDA_OK(cudaStreamSynchronize(stream));
    const auto t0 = Clock::now();
    cudaMemsetAsync(p, 0, 4, stream);
    t.push_back(us_since(t0));
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaFree(p));
  return median(t);
}

std::string fmt(double v, int digits = 2) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  for (size_t n = 0; n < rows.size(); ++n) {
    std::string line = "|";
    for (size_t i = 0; i < rows[n].size(); ++i) {
      line += " " + std::string(w[i] - rows[n][i].size(), ' ') + rows[n][i] + " |";
    }
    std::printf("%s\n", line.c_str());
    if (n == 0) {
      std::string sep = "|";
      for (size_t i = 0; i < w.size(); ++i) sep += " " + std::string(w[i] - 1, '-') + ": |";
      std::printf("%s\n", sep.c_str());
    }
  }
}

[[noreturn]] void usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: fasttopk_bench_cpp [--rows R --cols C --k K [--dtype fp32|fp16|bf16]]\n"
               "                          [--algo NAME] [--index int32|int64] [--calls N]\n"
               "                          [--replays R] [--enqueue-calls M] [--no-check] "
               "[--no-cold]\n"
               "                          [--descending]   (rows sorted largest first)\n"
               "                          [--input-offset BYTES] (warm input this far into its "
               "allocation)\n"
               "                          [--seed N]       (first shape's input seed)\n"
               "Without a shape: the latency table (1x50304 k50 fp16, 4x50304 k5 fp16,\n"
               "4x50304 k128 fp16, 32x32000 k40 fp32, 1x128256 k50 bf16, 1x131072 k2048 fp32).\n");
  std::exit(status);
}

Options parse(int argc, char** argv) {
  Options o;
  int64_t rows = -1, cols = -1, k = -1;
  DType dtype = DType::kFloat32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        usage(2);
      }
      return argv[++i];
    };
    auto integer = [&]() -> int64_t {
      const std::string v = value();
      char* end = nullptr;
      const long long x = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0') {
        std::fprintf(stderr, "%s: not an integer: %s\n", a.c_str(), v.c_str());
        usage(2);
      }
      return x;
    };
    if (a == "--help" || a == "-h")
      usage(0);
    else if (a == "--rows")
      rows = integer();
    else if (a == "--cols")
      cols = integer();
    else if (a == "--k")
      k = integer();
    else if (a == "--dtype") {
      if (!parse_dtype(value(), &dtype)) usage(2);
    } else if (a == "--algo") {
      const std::string name = value();
      const fasttopk::Status s = fasttopk::parse_algorithm(name.c_str(), &o.algorithm);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.message().c_str());
        std::exit(2);
      }
    } else if (a == "--index") {
      const std::string v = value();
      if (v == "int32")
        o.index_type = IndexType::kInt32;
      else if (v == "int64")
        o.index_type = IndexType::kInt64;
      else
        usage(2);
    } else if (a == "--calls")
      o.calls = static_cast<int>(std::max<int64_t>(20, integer()));
    else if (a == "--replays")
      o.replays = static_cast<int>(std::max<int64_t>(15, integer()));
    else if (a == "--enqueue-calls")
      o.enqueue_calls = static_cast<int>(std::max<int64_t>(100, integer()));
    else if (a == "--no-check")
      o.check = false;
    else if (a == "--no-cold")
      o.cold = false;
    else if (a == "--descending")
      o.descending = true;
    else if (a == "--input-offset") {
      o.input_offset = integer();
      if (o.input_offset < 0 || o.input_offset % 4 != 0) {
        std::fprintf(stderr, "--input-offset must be a non-negative multiple of 4 bytes\n");
        usage(2);
      }
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(integer());
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      usage(2);
    }
  }
  if (rows >= 0 || cols >= 0 || k >= 0) {
    if (rows < 1 || cols < 1 || k < 1 || k > cols) {
      std::fprintf(stderr, "a shape needs --rows >= 1, --cols >= 1 and 1 <= --k <= cols\n");
      usage(2);
    }
    o.shapes.push_back({rows, cols, k, dtype});
  } else {
    o.shapes = {{1, 50304, 50, DType::kFloat16},   {4, 50304, 5, DType::kFloat16},
                {4, 50304, 128, DType::kFloat16},  {32, 32000, 40, DType::kFloat32},
                {1, 128256, 50, DType::kBFloat16}, {1, 131072, 2048, DType::kFloat32}};
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf("fasttopk_bench_cpp: fasttopk %s\n", fasttopk::version());
  if (!fasttopk::cuda_compiled()) {
    std::printf("this fasttopk build has no CUDA path: nothing to measure\n");
    return 0;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    std::printf("no CUDA GPU: nothing to measure\n");
    return 0;
  }
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, device));
  int l2 = 0;
  CUDA_OK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  cudaStream_t stream = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::printf(
      "device: %s (sm_%d%d, %d SMs, L2 %d MiB); graph of %d calls, median of %d "
      "replays; enqueue = host time of one topk() call over %d calls\n",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount, l2 >> 20, o.calls, o.replays,
      o.enqueue_calls);
  const double memset_us = memset_host_cost(stream);

  std::vector<std::vector<std::string>> table = {
      {"rows", "cols", "k", "dtype", "algo", "workspace B", "graph us", "cold us", "eager us",
       "enqueue us", "enqueue p90", "enqueue min", "ws_size us", "check"}};
  int failures = 0;
  double worst_enqueue = 0;
  uint64_t seed = o.seed;
  for (const Shape& s : o.shapes) {
    std::fprintf(stderr, "  %lldx%lld k%lld %s ...\n", static_cast<long long>(s.rows),
                 static_cast<long long>(s.cols), static_cast<long long>(s.k), dtype_name(s.dtype));
    const Row r = run_shape(s, o, stream, static_cast<size_t>(l2), seed++);
    if (!r.error.empty() || r.check.rfind("FAIL", 0) == 0) ++failures;
    if (!std::isnan(r.enqueue_median)) worst_enqueue = std::max(worst_enqueue, r.enqueue_median);
    table.push_back({std::to_string(s.rows), std::to_string(s.cols), std::to_string(s.k),
                     dtype_name(s.dtype), r.algorithm, std::to_string(r.workspace), fmt(r.graph_us),
                     fmt(r.cold_us), fmt(r.eager_us), fmt(r.enqueue_median), fmt(r.enqueue_p90),
                     fmt(r.enqueue_min), fmt(r.workspace_size_us),
                     r.error.empty() ? r.check : "ERROR"});
    if (!r.error.empty()) std::printf("error: %s\n", r.error.c_str());
    if (r.check.rfind("FAIL", 0) == 0) std::printf("check: %s\n", r.check.c_str());
  }
  print_table(table);
  std::printf("for scale: cudaMemsetAsync costs %.2f us of host time (median)\n", memset_us);
  std::printf("host-side cost of topk(): worst median %.2f us (target < 3 us): %s\n", worst_enqueue,
              worst_enqueue < 3.0 ? "met" : "NOT MET");
  CUDA_OK(cudaStreamDestroy(stream));
  return failures ? 1 : 0;
}
