/* fasttopk C ABI — the same contract as fasttopk.hpp (read that header and
 * docs/semantics.md for the semantics), for callers in C and other languages.
 *
 * Every function returns a fasttopk_status_code (0 = success). Where
 * `message` is non-null, a NUL-terminated description of the error (or the
 * empty string on success) is written into it, truncated to message_len.
 */
#ifndef FASTTOPK_FASTTOPK_H_
#define FASTTOPK_FASTTOPK_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st* cudaStream_t;

typedef enum fasttopk_dtype {
  FASTTOPK_FLOAT32 = 0,
  FASTTOPK_FLOAT16 = 1,
  FASTTOPK_BFLOAT16 = 2
} fasttopk_dtype;

typedef enum fasttopk_index_type { FASTTOPK_INT32 = 0, FASTTOPK_INT64 = 1 } fasttopk_index_type;

/* Values match fasttopk::Algorithm. */
typedef enum fasttopk_algorithm {
  FASTTOPK_ALGO_AUTO = 0,
  FASTTOPK_ALGO_BLOCK_PER_ROW = 1,
  FASTTOPK_ALGO_SPLIT_ROW = 2,
  FASTTOPK_ALGO_ROW_PER_CTA = 3,
  FASTTOPK_ALGO_ROW_PER_WARP = 4,
  FASTTOPK_ALGO_ROW_PER_CLUSTER = 5
} fasttopk_algorithm;

/* Values match fasttopk::StatusCode. */
typedef enum fasttopk_status_code {
  FASTTOPK_SUCCESS = 0,
  FASTTOPK_INVALID_ARGUMENT = 1,
  FASTTOPK_WORKSPACE_TOO_SMALL = 2,
  FASTTOPK_UNSUPPORTED = 3,
  FASTTOPK_CUDA_ERROR = 4
} fasttopk_status_code;

/* Mirrors fasttopk::TopKParams. Initialise with fasttopk_params_init(). */
typedef struct fasttopk_params {
  const void* input;
  int32_t dtype; /* fasttopk_dtype */
  int64_t rows;
  int64_t cols;
  int64_t row_stride; /* 0 means cols */
  int64_t k;
  const int32_t* k_per_row;
  const int32_t* row_lengths;
  int32_t largest; /* non-zero: largest (default) */
  int32_t sorted;  /* non-zero: sorted (default) */
  void* values;
  void* indices;
  int32_t index_type; /* fasttopk_index_type */
  int32_t algorithm;  /* fasttopk_algorithm */
} fasttopk_params;

/* Sets the defaults of fasttopk::TopKParams (largest, sorted, int64, auto). */
void fasttopk_params_init(fasttopk_params* params);

fasttopk_status_code fasttopk_workspace_size(const fasttopk_params* params, size_t* bytes,
                                             char* message, size_t message_len);
fasttopk_status_code fasttopk_topk(const fasttopk_params* params, void* workspace,
                                   size_t workspace_bytes, cudaStream_t stream, char* message,
                                   size_t message_len);
fasttopk_status_code fasttopk_host_workspace_size(const fasttopk_params* params, int num_threads,
                                                  size_t* bytes, char* message, size_t message_len);
fasttopk_status_code fasttopk_topk_host(const fasttopk_params* params, void* workspace,
                                        size_t workspace_bytes, int num_threads, char* message,
                                        size_t message_len);

#ifdef __cplusplus
}
#endif

#endif /* FASTTOPK_FASTTOPK_H_ */
