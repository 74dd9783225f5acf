/* Compiled as C: proves that fasttopk.h is a valid C header and that the C
 * ABI works from C. Called by test_invalid.cpp (CAbi.UsableFromC). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fasttopk/fasttopk.h"

/* Returns 0 on success, otherwise the number of the first failed check. */
int fasttopk_test_c_abi_smoke(char* message, size_t message_len) {
  const float input[8] = {3.0f, -1.0f, 7.0f, 7.0f, 0.5f, -INFINITY, 2.0f, 9.0f};
  float values[3] = {0.0f, 0.0f, 0.0f};
  int32_t indices[3] = {0, 0, 0};
  size_t bytes = 0;
  uint64_t workspace[512];
  fasttopk_params p;
  fasttopk_status_code code;

  fasttopk_params_init(&p);
  if (p.largest != 1 || p.sorted != 1 || p.index_type != FASTTOPK_INT64 ||
      p.algorithm != FASTTOPK_ALGO_AUTO || p.dtype != FASTTOPK_FLOAT32 || p.input != NULL ||
      p.values != NULL || p.indices != NULL || p.k_per_row != NULL || p.row_lengths != NULL ||
      p.rows != 0 || p.cols != 0 || p.k != 0 || p.row_stride != 0) {
    return 1;
  }
  p.input = input;
  p.rows = 1;
  p.cols = 8;
  p.k = 3;
  p.values = values;
  p.indices = indices;
  p.index_type = FASTTOPK_INT32;

  code = fasttopk_host_workspace_size(&p, 1, &bytes, message, message_len);
  if (code != FASTTOPK_SUCCESS) return 2;
  if (bytes > sizeof(workspace)) return 3;
  code = fasttopk_topk_host(&p, workspace, bytes, 1, message, message_len);
  if (code != FASTTOPK_SUCCESS) return 4;
  if (message != NULL && message_len > 0 && message[0] != '\0') return 5;
  /* 9 (index 7), then the tie 7 / 7 by lower index: 2, 3. */
  if (indices[0] != 7 || indices[1] != 2 || indices[2] != 3) return 6;
  if (values[0] != 9.0f || values[1] != 7.0f || values[2] != 7.0f) return 7;

  p.k = 9; /* k > cols */
  code = fasttopk_topk_host(&p, workspace, sizeof(workspace), 1, message, message_len);
  if (code != FASTTOPK_INVALID_ARGUMENT) return 8;
  if (indices[0] != 7) return 9; /* not written on error */
  return 0;
}
