"""The numpy front end: numpy arrays in, numpy arrays out, on the CPU path."""

import numpy as np

from . import _C
from ._common import (
    HOST_THREADS,
    TopKResult,
    check_algorithm,
    check_bool,
    check_int,
    check_k,
    check_out,
    index_dtype_error,
    normalize_dim,
    per_row_dtype_error,
    per_row_range_error,
    per_row_shape_error,
)

_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}
_INDEX_DTYPES = {"int32": np.dtype(np.int32), "int64": np.dtype(np.int64)}


def _index_name(index_dtype):
    if index_dtype is None:
        return "int64"
    if isinstance(index_dtype, str) and index_dtype in _INDEX_DTYPES:
        return index_dtype
    text = str(index_dtype)
    if text in ("torch.int32", "torch.int64"):  # a torch dtype, matched by name
        return text[len("torch.") :]
    try:
        dtype = np.dtype(index_dtype)
    except TypeError:
        raise index_dtype_error(index_dtype) from None
    for name, candidate in _INDEX_DTYPES.items():
        if dtype == candidate:
            return name
    raise index_dtype_error(index_dtype)


def _input_dtype(x):
    """Returns (x with native byte order, dtype name); TypeError for other dtypes."""
    dtype = x.dtype
    if dtype.kind == "f" and not dtype.isnative:
        x = x.astype(dtype.newbyteorder("="))
        dtype = x.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        raise TypeError(
            f"fasttopk.topk: unsupported dtype {dtype} for a numpy array; supported dtypes are "
            "float32 and float16 (bfloat16 is supported for torch tensors)"
        )
    return x, name


def _as_rows(x, d):
    """Views x as [rows, cols] with `d` last: (x2, lead shape, row stride in elements).

    Keeps a view when each row is contiguous and rows are evenly spaced (the
    library takes a row stride); copies otherwise.
    """
    xt = x if d == x.ndim - 1 else np.moveaxis(x, d, -1)
    lead = xt.shape[:-1]
    cols = xt.shape[-1]
    rows = 1
    for size in lead:
        rows *= size
    x2 = xt.reshape(rows, cols)  # a view where possible, else a C-contiguous copy
    item = x2.itemsize
    ok = (
        x2.flags.aligned
        and (cols <= 1 or x2.strides[1] == item)
        and (rows <= 1 or (x2.strides[0] % item == 0 and x2.strides[0] >= cols * item))
    )
    if not ok:
        x2 = x2.copy(order="C")  # a fresh copy is aligned too
    row_stride = x2.strides[0] // item if rows > 1 else cols
    return x2, lead, row_stride


def _per_row(value, name, lead, rows, bound_name, bound):
    """A per-row argument as a contiguous int32 array of `rows` entries (None passes)."""
    if value is None:
        return None
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        raise per_row_dtype_error(name, a.dtype)
    if a.shape != tuple(lead) and a.shape != (rows,):
        raise per_row_shape_error(name, a.shape, lead, rows)
    given = a.reshape(rows)
    flat = given.astype(np.int64, copy=False)  # uint64 >= 2^63 turns negative: still bad
    bad = (flat < 0) | (flat > bound)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise per_row_range_error(name, row, int(given[row]), bound_name, bound)
    return np.ascontiguousarray(flat, dtype=np.int32)


def _address(a):
    return 0 if a is None else a.ctypes.data


def _check_out_arrays(out, shape, values_dtype, index_dtype):
    out_values, out_indices = check_out(out)
    for arr, dtype, what in (
        (out_values, values_dtype, "values"),
        (out_indices, index_dtype, "indices"),
    ):
        if not isinstance(arr, np.ndarray):
            raise TypeError(
                f"fasttopk.topk: out {what} must be a numpy.ndarray for a numpy input, "
                f"got {type(arr).__name__}"
            )
        if arr.shape != shape:
            raise ValueError(f"fasttopk.topk: out {what} has shape {arr.shape}, expected {shape}")
        if arr.dtype != dtype:
            raise TypeError(f"fasttopk.topk: out {what} has dtype {arr.dtype}, expected {dtype}")
        if not arr.flags.writeable:
            raise ValueError(f"fasttopk.topk: out {what} is read-only")
    return out_values, out_indices


def topk(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm, out):
    if isinstance(x, np.generic):  # a numpy scalar: a 0-d array
        x = np.asarray(x)
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            "fasttopk.topk: masked arrays are not supported (the mask would be ignored)"
        )
    x, dtype_name = _input_dtype(x)
    index_name = _index_name(index_dtype)
    algorithm = check_algorithm(algorithm)
    largest = check_bool(largest, "largest")
    sorted = check_bool(sorted, "sorted")
    k = check_int(k, "k")
    ndim = x.ndim
    d = normalize_dim(dim, ndim)

    if ndim == 0:
        # torch.topk's rule for a 0-d input: k in {0, 1}, a 0-d result holding the
        # element and index 0. Computed as one row of one element with k = 1.
        check_k(k, 1, d)
        x2, lead, row_stride = x.reshape(1, 1), (), 1
        cols, kk, out_shape = 1, 1, ()
    else:
        cols = x.shape[d]
        kk = check_k(k, cols, d)
        x2, lead, row_stride = _as_rows(x, d)
        out_shape = x.shape[:d] + (kk,) + x.shape[d + 1 :]
    rows = x2.shape[0]

    result_index_dtype = np.dtype(np.int32 if index_name == "int32" else np.int64)
    if out is not None:
        out = _check_out_arrays(out, out_shape, x2.dtype, result_index_dtype)

    k_rows = _per_row(k_per_row, "k_per_row", lead, rows, "k", kk)
    len_rows = _per_row(lengths, "lengths", lead, rows, f"size of dim {d}", cols)

    values = np.empty((rows, kk), dtype=x2.dtype)
    indices = np.empty((rows, kk), dtype=result_index_dtype)
    params = _C.Params(
        x2.ctypes.data,
        dtype_name,
        rows,
        cols,
        row_stride,
        kk,
        values.ctypes.data,
        indices.ctypes.data,
        index_name,
        _address(k_rows),
        _address(len_rows),
        largest,
        sorted,
        algorithm,
    )
    _C.topk_host(params, HOST_THREADS)

    if ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    else:
        values = values.reshape(tuple(lead) + (kk,))
        indices = indices.reshape(tuple(lead) + (kk,))
        if d != ndim - 1:
            values = np.moveaxis(values, -1, d)
            indices = np.moveaxis(indices, -1, d)
    if out is not None:
        np.copyto(out[0], values)
        np.copyto(out[1], indices)
        return TopKResult(out[0], out[1])
    return TopKResult(values, indices)


def chosen_algorithm(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm):
    # Validate exactly as topk() would; numpy arrays always take the CPU path.
    topk(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm, None)
    return "host"
