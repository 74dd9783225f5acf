"""Test helpers: a brute-force top-k oracle written from the contract, input
generators with special values, and the GPU availability probe.

The oracle deliberately does not reuse the library's key encoding: it ranks
with numpy.lexsort on (is-NaN, value, sign of zero, index) in float64, which
holds every fp32/fp16/bf16 value exactly.

Contract (fasttopk.hpp / docs/semantics.md):
  * largest: NaN (any sign/payload) ranks above +inf and NaNs tie with each
    other; +0.0 ranks above -0.0; equal keys -> lower index first.
  * smallest: the order of non-NaN values is reversed (-0.0 above +0.0) and
    NaN ranks last (ties among NaNs still -> lower index first).
  * per-row: row i considers its first lengths[i] elements and selects
    min(k_per_row[i], lengths[i]); slots past that hold -inf (largest) or
    +inf (smallest) with index -1.
  * values are the input's bits, copied exactly (NaN payloads kept).
"""

import numpy as np

# Raw bit patterns of the sentinels: (largest, smallest) = (-inf, +inf).
SENTINEL_BITS = {
    "float32": (0xFF800000, 0x7F800000),
    "float16": (0xFC00, 0x7C00),
    "bfloat16": (0xFF80, 0x7F80),
}
UINT_OF = {"float32": np.uint32, "float16": np.uint16, "bfloat16": np.uint16}

# A few NaNs of each sign, quiet and signalling, with payloads.
NAN_BITS = {
    "float32": [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF],
    "float16": [0x7E00, 0xFE00, 0x7C01, 0xFD23, 0x7FFF],
    "bfloat16": [0x7FC0, 0xFFC0, 0x7F81, 0xFFA5, 0x7FFF],
}


def rank_order(row, largest):
    """Indices of the float64 `row` in the contract's rank order (best first)."""
    row = np.asarray(row, dtype=np.float64)
    n = row.shape[0]
    is_nan = np.isnan(row)
    value = np.where(is_nan, 0.0, row)
    # Sign of zero as a tie-break: +0.0 -> 1, everything else (-0.0, NaN) -> 0.
    positive_zero = ((row == 0) & ~np.signbit(row)).astype(np.int64)
    index = np.arange(n)
    if largest:
        # NaN first, then larger values, +0 before -0, then lower index.
        keys = (index, -positive_zero, -value, -is_nan.astype(np.int64))
    else:
        # NaN last, then smaller values, -0 before +0, then lower index.
        keys = (index, positive_zero, value, is_nan.astype(np.int64))
    return np.lexsort(keys)


def expected_indices(values64, k, largest, k_per_row=None, lengths=None):
    """Oracle indices [rows, k] (sentinel -1) for the float64 [rows, cols] input."""
    rows, cols = values64.shape
    out = np.full((rows, k), -1, dtype=np.int64)
    for r in range(rows):
        n = cols if lengths is None else int(lengths[r])
        k_row = k if k_per_row is None else int(k_per_row[r])
        k_eff = min(k_row, n)
        if k_eff > 0:
            out[r, :k_eff] = rank_order(values64[r, :n], largest)[:k_eff]
    return out


def check_rows(
    values64, bits, dtype_name, k, largest, sorted_, out_bits, out_idx, k_per_row=None, lengths=None
):
    """Asserts that (out_bits, out_idx), both [rows, k], is the exact top-k of the
    [rows, cols] input given as float64 values and raw bits."""
    rows = values64.shape[0]
    assert out_bits.shape == (rows, k), (out_bits.shape, (rows, k))
    assert out_idx.shape == (rows, k), (out_idx.shape, (rows, k))
    want_idx = expected_indices(values64, k, largest, k_per_row, lengths)
    sentinel = SENTINEL_BITS[dtype_name][0 if largest else 1]
    got_idx = out_idx.astype(np.int64)
    got_bits = out_bits.astype(np.uint64)
    for r in range(rows):
        used = int((want_idx[r] >= 0).sum())
        if sorted_:
            np.testing.assert_array_equal(got_idx[r], want_idx[r], err_msg=f"indices of row {r}")
        else:
            np.testing.assert_array_equal(
                np.sort(got_idx[r, :used]),
                np.sort(want_idx[r, :used]),
                err_msg=f"selected set of row {r} (sorted=False)",
            )
            np.testing.assert_array_equal(got_idx[r, used:], -1, err_msg=f"sentinels of row {r}")
        want_bits = np.full(k, sentinel, dtype=np.uint64)
        want_bits[:used] = bits[r, got_idx[r, :used]].astype(np.uint64)
        np.testing.assert_array_equal(got_bits[r], want_bits, err_msg=f"value bits of row {r}")


def moved_rows(a, dim):
    """a with `dim` moved last, flattened to [rows, cols] (a copy)."""
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1)
    a = np.moveaxis(a, dim, -1)
    rows = int(np.prod(a.shape[:-1]))
    return np.ascontiguousarray(a).reshape(rows, a.shape[-1])


def expected_shape(shape, dim, k):
    if len(shape) == 0:
        return ()
    shape = list(shape)
    shape[dim] = k
    return tuple(shape)


def check_numpy_result(x, k, dim, largest, sorted_, result, k_per_row=None, lengths=None):
    """Checks a fasttopk result on the numpy array x (float16/float32)."""
    values, indices = result
    dtype_name = str(x.dtype)
    shape = expected_shape(x.shape, dim, k)
    assert values.shape == shape and indices.shape == shape, (values.shape, shape)
    assert values.dtype == x.dtype
    uint = UINT_OF[dtype_name]
    x_bits = moved_rows(np.ascontiguousarray(x).view(uint), dim)
    with np.errstate(invalid="ignore"):  # signalling NaNs quieten
        x64 = moved_rows(x, dim).astype(np.float64)
    kk = 1 if x.ndim == 0 else k
    if x.ndim == 0:
        out_bits = np.asarray(values).reshape(1, 1).view(uint)
        out_idx = np.asarray(indices).reshape(1, 1)
    else:
        out_bits = moved_rows(np.ascontiguousarray(values).view(uint), dim)
        out_idx = moved_rows(indices, dim)
    kpr = None if k_per_row is None else np.asarray(k_per_row).reshape(-1)
    lens = None if lengths is None else np.asarray(lengths).reshape(-1)
    check_rows(x64, x_bits, dtype_name, kk, largest, sorted_, out_bits, out_idx, kpr, lens)


def make_bits_input(rng, shape, dtype_name, kind):
    """Raw bits (as the unsigned type) of an input of `kind`:
    'normal' (distinct in practice), 'ties' (few distinct values),
    'special' (NaNs of both signs with payloads, +-inf, +-0, duplicates)."""
    uint = UINT_OF[dtype_name]
    size = int(np.prod(shape))
    if kind == "normal":
        f = rng.standard_normal(size).astype(np.float32)
    elif kind == "ties":
        f = rng.integers(-3, 4, size).astype(np.float32)
    elif kind == "special":
        f = rng.integers(-2, 3, size).astype(np.float32) * 0.5
    else:
        raise ValueError(kind)
    if dtype_name == "float32":
        bits = f.view(np.uint32).copy()
    elif dtype_name == "float16":
        bits = f.astype(np.float16).view(np.uint16).copy()
    else:  # bfloat16: truncate the (exactly representable) float32 values
        bits = (f.view(np.uint32) >> 16).astype(np.uint16)
    if kind == "special" and size > 0:
        inf = SENTINEL_BITS[dtype_name][1]
        sign = 0x80000000 if dtype_name == "float32" else 0x8000
        pool = list(NAN_BITS[dtype_name]) + [inf, inf | sign, 0, sign]
        chosen = rng.random(size) < 0.35
        picks = rng.integers(0, len(pool), size)
        bits = np.where(chosen, np.asarray(pool, dtype=np.uint64)[picks], bits).astype(uint)
    return bits.reshape(shape).astype(uint)


def make_numpy_input(rng, shape, dtype_name, kind):
    dtype = np.float32 if dtype_name == "float32" else np.float16
    return make_bits_input(rng, shape, dtype_name, kind).view(dtype)


# ------------------------------------------------------------------ torch ---


def torch_bits(t):
    """Raw bits of a float tensor as a numpy unsigned array (on the host)."""
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    return t.view(torch.int16).numpy().view(np.uint16)


def torch_float64(t):
    """Values of a float tensor as float64 numpy (exact for fp32/fp16/bf16)."""
    return t.detach().cpu().double().numpy()


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def make_torch_input(rng, shape, name, kind, device="cpu"):
    import torch

    bits = make_bits_input(rng, shape, name, kind)
    signed = bits.view(np.int32 if name == "float32" else np.int16)
    return torch.from_numpy(signed.copy()).view(getattr(torch, name)).to(device)


def check_torch_result(x, k, dim, largest, sorted_, result, k_per_row=None, lengths=None):
    """Checks a fasttopk result for the torch tensor x against the oracle."""
    import torch

    values, indices = result
    shape = expected_shape(tuple(x.shape), dim, k)
    assert tuple(values.shape) == shape and tuple(indices.shape) == shape, (values.shape, shape)
    assert values.dtype == x.dtype and values.device == x.device == indices.device
    assert indices.dtype in (torch.int64, torch.int32)
    x_bits = moved_rows(torch_bits(x), dim)
    x64 = moved_rows(torch_float64(x), dim)
    out_bits = moved_rows(torch_bits(values), dim)
    out_idx = moved_rows(indices.cpu().numpy(), dim)
    kk = 1 if x.dim() == 0 else k

    def flat(a):
        if a is None:
            return None
        if isinstance(a, torch.Tensor):
            a = a.cpu().numpy()
        return np.asarray(a).reshape(-1)

    check_rows(
        x64,
        x_bits,
        dtype_name(x),
        kk,
        largest,
        sorted_,
        out_bits,
        out_idx,
        flat(k_per_row),
        flat(lengths),
    )


def assert_same_result(a, b):
    """Bitwise equality of two (values, indices) results (any devices)."""
    assert tuple(a[0].shape) == tuple(b[0].shape), (a[0].shape, b[0].shape)
    assert a[0].dtype == b[0].dtype and a[1].dtype == b[1].dtype
    np.testing.assert_array_equal(torch_bits(a[0]), torch_bits(b[0]))
    np.testing.assert_array_equal(a[1].cpu().numpy(), b[1].cpu().numpy())


def assert_direct_body_matches_op(x, cases):
    """The eager fast path's body (_torch._topk_direct, for inputs _prepare has
    made ready), the op's body (_torch._topk_impl) and the dispatched custom
    op give the same tensors, for each case of the op's arguments after x:
    (k, largest, sorted, k_per_row, lengths, int32_indices, algorithm)."""
    import torch

    from fasttopk import _torch

    for args in cases:
        dispatched = _torch._topk(x, *args)
        for body in (_torch._topk_direct, _torch._topk_impl):
            for a, b in zip(body(x, *args), dispatched):
                assert a.dtype == b.dtype and torch.equal(a, b), body.__name__


def gpu_status():
    """(True, description) when the CUDA tests can run, else (False, reason)."""
    try:
        import fasttopk
    except ImportError as error:  # pragma: no cover - a broken install
        return False, f"fasttopk cannot be imported: {error}"
    try:
        import torch
    except ImportError:
        return False, "no CUDA GPU: torch is not installed"
    if not torch.cuda.is_available():
        return False, (
            f"no CUDA GPU: torch {torch.__version__} (CUDA {torch.version.cuda}) "
            "sees no CUDA device"
        )
    if not fasttopk.cuda_compiled():
        return False, "no CUDA GPU: fasttopk was built without CUDA (FASTTOPK_ENABLE_CUDA=OFF)"
    return True, (
        f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    )


# (shape, dim) of the random oracle tests shared by the numpy and torch CPU suites.
RANDOM_CASES = [
    ((1, 1), -1),
    ((5, 17), -1),
    ((5, 17), 0),
    ((3, 4, 33), 1),
    ((64,), 0),
    ((2, 3, 4, 5), 2),
    ((7, 300), -1),
]
