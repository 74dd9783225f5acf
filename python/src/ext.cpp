// fasttopk._C: the nanobind binding of the public C++ API (fasttopk.hpp).
//
// Low level on purpose: tensors cross the boundary as raw addresses (Python
// ints, e.g. numpy's ctypes.data or torch's data_ptr()) plus shape/stride
// metadata, and the CUDA stream as an integer handle. The extension therefore
// links no framework (no torch, no numpy headers), costs no DLPack exchange
// per call, and has no opinion on stream semantics: the Python layer
// (fasttopk/_numpy.py, fasttopk/_torch.py) owns validation of Python objects,
// memory management and streams.
//
// Status codes become Python exceptions:
//   kInvalidArgument, kWorkspaceTooSmall -> ValueError
//   kUnsupported -> ValueError when a specific GPU algorithm was forced and
//                   cannot take the problem (an argument problem), otherwise
//                   RuntimeError (the build lacks CUDA, or the device is not
//                   supported)
//   kCudaError -> RuntimeError
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fasttopk/fasttopk.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using fasttopk::Algorithm;
using fasttopk::DType;
using fasttopk::IndexType;
using fasttopk::Status;
using fasttopk::StatusCode;
using fasttopk::TopKParams;

/// Raises the Python exception that corresponds to a non-ok Status.
void check(const Status& s, const TopKParams& params) {
  if (s.ok()) return;
  const std::string message = s.message();
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kWorkspaceTooSmall:
      throw nb::value_error(message.c_str());
    case StatusCode::kUnsupported:
      if (params.algorithm != Algorithm::kAuto && fasttopk::cuda_compiled()) {
        throw nb::value_error(message.c_str());
      }
      throw std::runtime_error(message);
    case StatusCode::kCudaError:
    default:
      throw std::runtime_error(message);
  }
}

DType parse_dtype(const std::string& name) {
  if (name == "float32") return DType::kFloat32;
  if (name == "float16") return DType::kFloat16;
  if (name == "bfloat16") return DType::kBFloat16;
  throw nb::value_error(
      ("unknown dtype '" + name + "' (expected 'float32', 'float16' or 'bfloat16')").c_str());
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

IndexType parse_index_dtype(const std::string& name) {
  if (name == "int64") return IndexType::kInt64;
  if (name == "int32") return IndexType::kInt32;
  throw nb::value_error(
      ("unknown index dtype '" + name + "' (expected 'int32' or 'int64')").c_str());
}

Algorithm parse_algorithm(const std::string& name) {
  Algorithm algorithm = Algorithm::kAuto;
  const Status s = fasttopk::parse_algorithm(name.c_str(), &algorithm);
  if (!s.ok()) throw nb::value_error(s.message().c_str());
  return algorithm;
}

template <typename T>
T* pointer(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

void init_params(TopKParams* p, std::uintptr_t input, const std::string& dtype, int64_t rows,
                 int64_t cols, int64_t row_stride, int64_t k, std::uintptr_t values,
                 std::uintptr_t indices, const std::string& index_dtype, std::uintptr_t k_per_row,
                 std::uintptr_t row_lengths, bool largest, bool sorted,
                 const std::string& algorithm) {
  TopKParams q;
  q.input = pointer<const void>(input);
  q.dtype = parse_dtype(dtype);
  q.rows = rows;
  q.cols = cols;
  q.row_stride = row_stride;
  q.k = k;
  q.values = pointer<void>(values);
  q.indices = pointer<void>(indices);
  q.index_type = parse_index_dtype(index_dtype);
  q.k_per_row = pointer<const int32_t>(k_per_row);
  q.row_lengths = pointer<const int32_t>(row_lengths);
  q.largest = largest;
  q.sorted = sorted;
  q.algorithm = parse_algorithm(algorithm);
  new (p) TopKParams(q);
}

std::string params_repr(const TopKParams& p) {
  return std::string("Params(dtype='") + dtype_name(p.dtype) + "', rows=" + std::to_string(p.rows) +
         ", cols=" + std::to_string(p.cols) + ", row_stride=" + std::to_string(p.row_stride) +
         ", k=" + std::to_string(p.k) + ", index_dtype='" +
         (p.index_type == IndexType::kInt64 ? "int64" : "int32") +
         "', largest=" + (p.largest ? "True" : "False") +
         ", sorted=" + (p.sorted ? "True" : "False") +
         ", k_per_row=" + (p.k_per_row ? "set" : "None") +
         ", row_lengths=" + (p.row_lengths ? "set" : "None") + ", algorithm='" +
         fasttopk::algorithm_name(p.algorithm) + "')";
}

std::size_t workspace_size(const TopKParams& params) {
  std::size_t bytes = 0;
  Status s;
  {
    nb::gil_scoped_release release;
    s = fasttopk::workspace_size(params, &bytes);
  }
  check(s, params);
  return bytes;
}

void topk_cuda(const TopKParams& params, std::uintptr_t workspace, std::size_t workspace_bytes,
               std::uintptr_t stream) {
  Status s;
  {
    nb::gil_scoped_release release;
    s = fasttopk::topk(params, pointer<void>(workspace), workspace_bytes,
                       reinterpret_cast<cudaStream_t>(stream));
  }
  check(s, params);
}

std::size_t host_workspace_size(const TopKParams& params, int num_threads) {
  std::size_t bytes = 0;
  check(fasttopk::host_workspace_size(params, num_threads, &bytes), params);
  return bytes;
}

void topk_host(const TopKParams& params, int num_threads) {
  Status s;
  {
    nb::gil_scoped_release release;
    std::size_t bytes = 0;
    s = fasttopk::host_workspace_size(params, num_threads, &bytes);
    if (s.ok()) {
      // uint64_t elements: the 8-byte alignment topk_host requires. Left
      // uninitialised: topk_host promises nothing about its contents, and
      // zeroing it (std::vector's value-initialisation) cost ~60 us a call
      // when it held a row per thread (400 KB at 50304 columns).
      const std::unique_ptr<uint64_t[]> workspace(
          new uint64_t[(bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t)]);
      s = fasttopk::topk_host(params, workspace.get(), bytes, num_threads);
    }
  }
  check(s, params);
}

std::string chosen_algorithm(const TopKParams& params) {
  Algorithm algorithm = Algorithm::kAuto;
  Status s;
  {
    nb::gil_scoped_release release;
    s = fasttopk::chosen_algorithm(params, &algorithm);
  }
  check(s, params);
  return fasttopk::algorithm_name(algorithm);
}

std::vector<std::string> algorithm_names() {
  std::vector<std::string> names;
  for (int i = 0; i < fasttopk::algorithm_count(); ++i) {
    names.emplace_back(fasttopk::algorithm_name(fasttopk::algorithm_at(i)));
  }
  return names;
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() =
      "Low-level binding of the fasttopk C++ API. Tensors are passed as raw addresses "
      "(ints) plus metadata; use fasttopk.topk() unless you manage memory yourself.";

  nb::class_<TopKParams>(m, "Params",
                         "fasttopk::TopKParams: one top-k call. Addresses are ints (0 = "
                         "null); sizes are in elements; row_stride 0 means cols.")
      .def("__init__", &init_params, "input"_a, "dtype"_a, "rows"_a, "cols"_a, "row_stride"_a = 0,
           "k"_a, "values"_a, "indices"_a, "index_dtype"_a = "int64", "k_per_row"_a = 0,
           "row_lengths"_a = 0, "largest"_a = true, "sorted"_a = true, "algorithm"_a = "auto",
           "dtype: 'float32' | 'float16' | 'bfloat16'; index_dtype: 'int32' | 'int64'; "
           "algorithm: 'auto' or a name from algorithm_names(). Raises ValueError for an "
           "unknown name.")
      .def_prop_ro("input", [](const TopKParams& p) { return address(p.input); })
      .def_prop_ro("dtype", [](const TopKParams& p) { return std::string(dtype_name(p.dtype)); })
      .def_ro("rows", &TopKParams::rows)
      .def_ro("cols", &TopKParams::cols)
      .def_ro("row_stride", &TopKParams::row_stride)
      .def_ro("k", &TopKParams::k)
      .def_prop_ro("values", [](const TopKParams& p) { return address(p.values); })
      .def_prop_ro("indices", [](const TopKParams& p) { return address(p.indices); })
      .def_prop_ro("index_dtype",
                   [](const TopKParams& p) {
                     return std::string(p.index_type == IndexType::kInt64 ? "int64" : "int32");
                   })
      .def_prop_ro("k_per_row", [](const TopKParams& p) { return address(p.k_per_row); })
      .def_prop_ro("row_lengths", [](const TopKParams& p) { return address(p.row_lengths); })
      .def_ro("largest", &TopKParams::largest)
      .def_ro("sorted", &TopKParams::sorted)
      .def_prop_ro(
          "algorithm",
          [](const TopKParams& p) { return std::string(fasttopk::algorithm_name(p.algorithm)); })
      .def("__repr__", &params_repr);

  m.def("workspace_size", &workspace_size, "params"_a,
        "Bytes of device workspace topk_cuda(params, ...) needs (may be 0). Validates params; "
        "uses the current CUDA device.");
  m.def("topk_cuda", &topk_cuda, "params"_a, "workspace"_a, "workspace_bytes"_a, "stream"_a,
        "Runs top-k on the GPU, asynchronously on `stream` (a cudaStream_t as an int; 0 = "
        "the legacy default stream). `workspace` is a device address aligned to 256 bytes "
        "holding at least workspace_size(params) bytes, untouched until the work completes.");
  m.def("host_workspace_size", &host_workspace_size, "params"_a, "num_threads"_a = 0,
        "Bytes of host scratch topk_host(params, num_threads) allocates.");
  m.def("topk_host", &topk_host, "params"_a, "num_threads"_a = 0,
        "Runs top-k on the CPU over host memory (workspace allocated internally; the GIL is "
        "released). num_threads = 0 uses every hardware thread.");
  m.def("chosen_algorithm", &chosen_algorithm, "params"_a,
        "Name of the GPU algorithm topk_cuda(params) would run ('auto' resolved; 'auto' is "
        "returned for an empty problem).");
  m.def("algorithm_names", &algorithm_names,
        "Names of the GPU algorithms that can be forced, in enum order ('auto' excluded).");
  m.def("cuda_compiled", &fasttopk::cuda_compiled, "Whether this build contains the CUDA path.");
  m.def(
      "version", []() { return std::string(fasttopk::version()); },
      "Library version, 'MAJOR.MINOR.PATCH'.");
}
