"""The numpy front end (CPU path) against the brute-force oracle of
fasttopk_testing, plus argument validation and the low-level binding."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fasttopk
from fasttopk import _C
from fasttopk_testing import RANDOM_CASES, SENTINEL_BITS, check_numpy_result, make_numpy_input

DTYPES = ["float32", "float16"]
KINDS = ["normal", "ties", "special"]


def bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint16)


# ------------------------------------------------------------------ order ---


@pytest.mark.parametrize("dtype", DTYPES)
def test_contract_order_by_hand(dtype):
    # Hand-ranked (not the oracle): NaNs of both signs tie above +inf and keep
    # index order, +0 ranks above -0, equal values keep index order.
    nan = np.float32("nan")
    x = np.array([1.0, nan, -0.0, np.inf, 0.0, -nan, -np.inf, 1.0], dtype=dtype)
    values, indices = fasttopk.topk(x, 8)
    assert indices.tolist() == [1, 5, 3, 0, 7, 4, 2, 6]
    np.testing.assert_array_equal(bits(values), bits(x)[[1, 5, 3, 0, 7, 4, 2, 6]])
    values, indices = fasttopk.topk(x, 8, largest=False)
    assert indices.tolist() == [6, 2, 4, 0, 7, 3, 1, 5]
    np.testing.assert_array_equal(bits(values), bits(x)[[6, 2, 4, 0, 7, 3, 1, 5]])
    # The k-th boundary keeps the lowest indices among ties.
    assert fasttopk.topk(x, 4).indices.tolist() == [1, 5, 3, 0]
    assert fasttopk.topk(x, 3, largest=False).indices.tolist() == [6, 2, 4]


def test_nan_payloads_are_copied_bit_for_bit():
    raw = np.array([0x7F800001, 0xFFC01234, 0x3F800000, 0x7FC00000], dtype=np.uint32)
    x = raw.view(np.float32)
    values, indices = fasttopk.topk(x, 4)
    assert indices.tolist() == [0, 1, 3, 2]
    assert bits(values).tolist() == raw[[0, 1, 3, 2]].tolist()
    raw16 = np.array([0x3C00, 0xFD23, 0x7C01], dtype=np.uint16)
    values, indices = fasttopk.topk(raw16.view(np.float16), 2)
    assert indices.tolist() == [1, 2]
    assert bits(values).tolist() == [0xFD23, 0x7C01]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("sorted_", [True, False])
def test_random_against_oracle(dtype, kind, largest, sorted_):
    rng = np.random.default_rng(1234)
    for shape, dim in RANDOM_CASES + [((2, 1, 3), 1)]:
        x = make_numpy_input(rng, shape, dtype, kind)
        n = shape[dim]
        for k in sorted({0, 1, n // 2, n - 1, n} - {-1}):
            result = fasttopk.topk(x, k, dim=dim, largest=largest, sorted=sorted_)
            check_numpy_result(x, k, dim, largest, sorted_, result)


def test_results_are_deterministic_and_threaded():
    # Large enough to be split across threads on the host path.
    rng = np.random.default_rng(7)
    x = make_numpy_input(rng, (96, 4096), "float32", "ties")
    first = fasttopk.topk(x, 100)
    check_numpy_result(x, 100, -1, True, True, first)
    for _ in range(3):
        again = fasttopk.topk(x, 100)
        np.testing.assert_array_equal(bits(again.values), bits(first.values))
        np.testing.assert_array_equal(again.indices, first.indices)


# ---------------------------------------------------------- shapes / dims ---


def test_zero_dim_input_follows_torch():
    x = np.array(2.5, dtype=np.float32)
    for k in (0, 1):
        values, indices = fasttopk.topk(x, k)
        assert values.shape == () and indices.shape == ()
        assert values.dtype == np.float32 and indices.dtype == np.int64
        assert float(values) == 2.5 and int(indices) == 0
    assert fasttopk.topk(x, 1, dim=0).values.shape == ()
    assert float(fasttopk.topk(np.float16(-1.5), 1).values) == -1.5  # numpy scalar
    with pytest.raises(ValueError, match=r"k = 2 is out of range for dimension 0 of size 1"):
        fasttopk.topk(x, 2)
    with pytest.raises(ValueError, match=r"dim 1 is out of range for a 0-d input"):
        fasttopk.topk(x, 1, dim=1)


@pytest.mark.parametrize(
    "shape,dim,k,want",
    [
        ((0, 5), -1, 3, (0, 3)),
        ((4, 0), -1, 0, (4, 0)),
        ((3, 0, 2), 1, 0, (3, 0, 2)),
        ((0, 5), 0, 0, (0, 5)),
        ((0,), 0, 0, (0,)),
        ((6, 5), -1, 0, (6, 0)),
        ((6, 5), 0, 0, (0, 5)),
    ],
)
def test_empty_and_k_zero_shapes(shape, dim, k, want):
    x = np.zeros(shape, dtype=np.float32)
    values, indices = fasttopk.topk(x, k, dim=dim)
    assert values.shape == want and indices.shape == want
    assert values.dtype == np.float32 and indices.dtype == np.int64


def test_negative_dims_match_positive():
    rng = np.random.default_rng(3)
    x = make_numpy_input(rng, (4, 6, 8), "float32", "ties")
    for dim in range(3):
        a = fasttopk.topk(x, 3, dim=dim)
        b = fasttopk.topk(x, 3, dim=dim - 3)
        np.testing.assert_array_equal(a.indices, b.indices)
        check_numpy_result(x, 3, dim, True, True, a)


def _non_contiguous_cases(rng, dtype):
    base = make_numpy_input(rng, (12, 40), dtype, "special")
    yield "transposed", base.T, -1
    yield "column slice (row stride)", base[:, 3:31], -1
    yield "step 2 within rows", base[:, ::2], -1
    yield "reversed rows", base[:, ::-1], -1
    yield "every other row", base[::2], -1
    yield "reversed row order", base[::-1], 1
    yield "fortran order", np.asfortranarray(base), -1
    yield "fortran order dim 0", np.asfortranarray(base), 0
    yield "broadcast rows", np.broadcast_to(base[0], (5, 40)), -1
    yield "3-d middle dim slice", make_numpy_input(rng, (3, 10, 7), dtype, "ties")[:, 2:9, ::3], 1
    yield "byte-swapped", base.astype(base.dtype.newbyteorder(">")), -1
    raw = np.zeros(base.nbytes + 1, dtype=np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=base.dtype, count=base.size, offset=1)
    unaligned = unaligned.reshape(base.shape)
    unaligned.flags.writeable = True
    unaligned[...] = base
    assert not unaligned.flags.aligned
    yield "unaligned", unaligned, -1


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(11)
    for name, x, dim in _non_contiguous_cases(rng, dtype):
        for largest in (True, False):
            k = x.shape[dim] // 2 + 1
            result = fasttopk.topk(x, k, dim=dim, largest=largest)
            native = np.ascontiguousarray(x).astype(np.dtype(dtype))
            assert result.values.dtype == np.dtype(dtype), name
            check_numpy_result(native, k, dim, largest, True, result)


def test_input_is_not_modified_and_readonly_inputs_work():
    rng = np.random.default_rng(5)
    x = make_numpy_input(rng, (4, 9), "float16", "special")
    before = bits(x).copy()
    x.flags.writeable = False
    fasttopk.topk(x, 5)
    np.testing.assert_array_equal(bits(x), before)


# ---------------------------------------------------------------- per row ---


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("sorted_", [True, False])
def test_per_row_k_and_lengths(dtype, largest, sorted_):
    rng = np.random.default_rng(21)
    rows, cols, k = 9, 30, 12
    x = make_numpy_input(rng, (rows, cols), dtype, "special")
    k_per_row = rng.integers(0, k + 1, rows).astype(np.int32)
    lengths = rng.integers(0, cols + 1, rows).astype(np.int32)
    k_per_row[0], lengths[1], lengths[2] = k, 0, cols
    for kpr, lens in ((k_per_row, None), (None, lengths), (k_per_row, lengths)):
        result = fasttopk.topk(x, k, largest=largest, sorted=sorted_, k_per_row=kpr, lengths=lens)
        check_numpy_result(x, k, -1, largest, sorted_, result, kpr, lens)


def test_per_row_sentinels_explicitly():
    x = np.array([[5.0, 1.0, 3.0, 2.0], [4.0, 8.0, 6.0, 7.0]], dtype=np.float32)
    values, indices = fasttopk.topk(x, 3, k_per_row=[1, 3], lengths=[4, 2])
    assert indices.tolist() == [[0, -1, -1], [1, 0, -1]]
    assert values.tolist() == [[5.0, -np.inf, -np.inf], [8.0, 4.0, -np.inf]]
    values, indices = fasttopk.topk(x, 2, largest=False, lengths=[0, 1], index_dtype=np.int32)
    assert indices.dtype == np.int32
    assert indices.tolist() == [[-1, -1], [0, -1]]
    assert values.tolist() == [[np.inf, np.inf], [4.0, np.inf]]
    s = SENTINEL_BITS["float16"]
    values, _ = fasttopk.topk(x.astype(np.float16), 2, k_per_row=[0, 0])
    assert bits(values).tolist() == [[s[0], s[0]], [s[0], s[0]]]


def test_per_row_shapes_dims_and_types():
    rng = np.random.default_rng(8)
    x = make_numpy_input(rng, (3, 16, 4), "float32", "ties")  # dim=1: rows are (3, 4)
    k = 6
    kpr = rng.integers(0, k + 1, (3, 4))
    lens = rng.integers(0, 17, (3, 4))
    want = fasttopk.topk(x, k, dim=1, k_per_row=kpr.astype(np.int32), lengths=lens.astype(np.int32))
    check_numpy_result(x, k, 1, True, True, want, kpr, lens)
    variants = [
        (kpr.reshape(-1), lens.reshape(-1)),  # flat, one entry per row
        (kpr.astype(np.int64), lens.astype(np.uint8)),  # other integer dtypes
        (kpr.tolist(), lens.tolist()),  # nested lists
        (np.asfortranarray(kpr), lens[:, ::-1][:, ::-1]),  # non-contiguous
    ]
    for a, b in variants:
        got = fasttopk.topk(x, k, dim=1, k_per_row=a, lengths=b)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(bits(got.values), bits(want.values))


def test_per_row_small_integer_dtypes_with_large_bounds():
    rng = np.random.default_rng(9)
    x = make_numpy_input(rng, (2, 300), "float16", "ties")  # cols = 300 > 255
    lens = np.array([200, 3], np.uint8)
    kpr = np.array([100, 2], np.int8)
    result = fasttopk.topk(x, 280, k_per_row=kpr, lengths=lens)
    check_numpy_result(x, 280, -1, True, True, result, kpr, lens)
    with pytest.raises(ValueError, match=r"lengths\[0\] = 18446744073709551615 is outside"):
        fasttopk.topk(x, 280, lengths=np.array([2**64 - 1, 3], np.uint64))


def test_int32_indices():
    rng = np.random.default_rng(2)
    x = make_numpy_input(rng, (6, 50), "float16", "special")
    for index_dtype in (np.int32, "int32", np.dtype("int32")):
        result = fasttopk.topk(x, 7, index_dtype=index_dtype)
        assert result.indices.dtype == np.int32
        check_numpy_result(x, 7, -1, True, True, result)
    assert fasttopk.topk(x, 7, index_dtype="int64").indices.dtype == np.int64
    assert fasttopk.topk(x, 7, index_dtype=np.int64).indices.dtype == np.int64


def test_out_arrays():
    rng = np.random.default_rng(4)
    x = make_numpy_input(rng, (5, 8, 3), "float32", "ties")
    values = np.empty((5, 4, 3), np.float32)
    indices = np.empty((5, 4, 3), np.int64)
    result = fasttopk.topk(x, 4, dim=1, out=(values, indices))
    assert result.values is values and result.indices is indices
    check_numpy_result(x, 4, 1, True, True, result)
    with pytest.raises(ValueError, match=r"out values has shape \(5, 3, 3\), expected \(5, 4, 3\)"):
        fasttopk.topk(x, 4, dim=1, out=(np.empty((5, 3, 3), np.float32), indices))
    with pytest.raises(TypeError, match=r"out indices has dtype int32, expected int64"):
        fasttopk.topk(x, 4, dim=1, out=(values, np.empty((5, 4, 3), np.int32)))
    with pytest.raises(TypeError, match=r"out must be a tuple \(values, indices\)"):
        fasttopk.topk(x, 4, dim=1, out=values)


def test_result_is_a_named_tuple():
    result = fasttopk.topk(np.arange(5, dtype=np.float32), 2)
    values, indices = result
    assert isinstance(result, fasttopk.TopKResult) and isinstance(result, tuple)
    assert values is result.values and indices is result.indices
    assert values.tolist() == [4.0, 3.0] and indices.tolist() == [4, 3]


# ----------------------------------------------------------------- errors ---


def test_type_errors():
    x = np.ones((2, 3), np.float32)
    supported = r"supported dtypes are float32 and float16"
    with pytest.raises(TypeError, match=r"unsupported dtype float64.*" + supported):
        fasttopk.topk(np.ones(3), 1)
    with pytest.raises(TypeError, match=r"unsupported dtype int32"):
        fasttopk.topk(np.ones(3, np.int32), 1)
    with pytest.raises(TypeError, match=r"unsupported dtype bool"):
        fasttopk.topk(np.ones(3, bool), 1)
    with pytest.raises(TypeError, match=r"input must be a numpy.ndarray or a torch.Tensor, got list"):
        fasttopk.topk([1.0, 2.0], 1)
    # largest and sorted are bools (numpy's too), not anything truthy.
    for name, bad in (("largest", None), ("largest", 1), ("sorted", "no"), ("sorted", np.int64(0))):
        with pytest.raises(TypeError, match=rf"{name} must be a bool, got {type(bad).__name__}"):
            fasttopk.topk(x, 1, **{name: bad})
    with pytest.raises(TypeError, match=r"k must be an int, got float"):
        fasttopk.topk(x, 1.0)
    with pytest.raises(TypeError, match=r"k must be an int, got bool"):
        fasttopk.topk(x, True)
    with pytest.raises(TypeError, match=r"dim must be an int, got str"):
        fasttopk.topk(x, 1, dim="1")
    with pytest.raises(TypeError, match=r"k_per_row must hold integers, got dtype float64"):
        fasttopk.topk(x, 1, k_per_row=[1.0, 1.0])
    with pytest.raises(TypeError, match=r"lengths must hold integers, got dtype bool"):
        fasttopk.topk(x, 1, lengths=[True, False])
    with pytest.raises(TypeError, match=r"index_dtype must be int32 or int64"):
        fasttopk.topk(x, 1, index_dtype=np.float32)
    with pytest.raises(TypeError, match=r"index_dtype must be int32 or int64"):
        fasttopk.topk(x, 1, index_dtype="int16")
    with pytest.raises(TypeError, match=r"algorithm must be a str"):
        fasttopk.topk(x, 1, algorithm=1)
    with pytest.raises(TypeError, match=r"masked arrays are not supported"):
        fasttopk.topk(np.ma.masked_array(x), 1)


def test_value_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"k = 4 is out of range for dimension 1 of size 3"):
        fasttopk.topk(x, 4)
    with pytest.raises(ValueError, match=r"k = -1 is out of range"):
        fasttopk.topk(x, -1)
    with pytest.raises(ValueError, match=r"k = 3 is out of range for dimension 0 of size 2"):
        fasttopk.topk(x, 3, dim=0)
    with pytest.raises(
        ValueError, match=r"dim 2 is out of range for a 2-d input \(expected a value in \[-2, 1\]\)"
    ):
        fasttopk.topk(x, 1, dim=2)
    with pytest.raises(ValueError, match=r"dim -3 is out of range"):
        fasttopk.topk(x, 1, dim=-3)
    with pytest.raises(
        ValueError,
        match=r"k_per_row must have one entry per row: shape \(2,\) or \(2,\), got shape \(3,\)",
    ):
        fasttopk.topk(x, 1, k_per_row=[1, 1, 1])
    with pytest.raises(
        ValueError,
        match=r"lengths must have one entry per row: shape \(2, 4\) or \(8,\), got shape \(4, 2\)",
    ):
        fasttopk.topk(np.ones((2, 3, 4), np.float32), 1, dim=1, lengths=np.ones((4, 2), np.int32))
    with pytest.raises(ValueError, match=r"k_per_row\[1\] = 3 is outside \[0, k = 2\]"):
        fasttopk.topk(x, 2, k_per_row=[0, 3])
    with pytest.raises(ValueError, match=r"k_per_row\[0\] = -1 is outside \[0, k = 2\]"):
        fasttopk.topk(x, 2, k_per_row=np.array([-1, 0], np.int64))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[0, size of dim 1 = 3\]"):
        fasttopk.topk(x, 2, lengths=[3, 4])
    with pytest.raises(ValueError, match=r"lengths\[0\] = 4294967298 is outside"):
        fasttopk.topk(x, 2, lengths=np.array([2**32 + 2, 0], np.int64))  # no int32 wrap-around
    with pytest.raises(
        ValueError, match=r"unknown algorithm 'fastest' \(known: auto, block_per_row"
    ):
        fasttopk.topk(x, 1, algorithm="fastest")
    for name in fasttopk.algorithms():
        with pytest.raises(ValueError, match=rf"algorithm '{name}' is a GPU algorithm"):
            fasttopk.topk(x, 1, algorithm=name)


# ------------------------------------------------------------ module / _C ---


def test_module_facts():
    assert fasttopk.__version__ == fasttopk.version() == _C.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", fasttopk.__version__)
    cmake = (Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
    assert re.search(rf"project\(fasttopk VERSION {re.escape(fasttopk.__version__)}\b", cmake)
    assert importlib.metadata.version("fasttopk") == fasttopk.__version__
    assert fasttopk.algorithms() == tuple(_C.algorithm_names())
    assert "block_per_row" in fasttopk.algorithms() and "auto" not in fasttopk.algorithms()
    assert fasttopk.cuda_compiled() is _C.cuda_compiled()
    x = np.ones((2, 3), np.float32)
    assert fasttopk.chosen_algorithm(x, 2) == "host"


def test_bench_entry_point_is_declared():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = [ep for ep in scripts if ep.name == "fasttopk-bench"]
    assert entry.value == "fasttopk.bench:main"
    assert callable(entry.load())  # the module ships in the wheel and imports without torch


def test_numpy_use_does_not_import_torch():
    code = (
        "import sys, numpy as np, fasttopk\n"
        "r = fasttopk.topk(np.array([1, 3, 2], np.float32), 2)\n"
        "assert r.indices.tolist() == [1, 2]\n"
        "print('torch' in sys.modules, 'fasttopk._torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_low_level_params_and_errors():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    values = np.empty((3, 2), np.float32)
    indices = np.empty((3, 2), np.int32)
    p = _C.Params(
        x.ctypes.data, "float32", 3, 4, 4, 2, values.ctypes.data, indices.ctypes.data, "int32"
    )
    assert (p.rows, p.cols, p.row_stride, p.k, p.dtype, p.index_dtype) == (
        3,
        4,
        4,
        2,
        "float32",
        "int32",
    )
    assert p.largest and p.sorted and p.algorithm == "auto" and p.k_per_row == 0
    assert "rows=3" in repr(p)
    assert _C.host_workspace_size(p, 1) >= 0
    _C.topk_host(p, 1)
    assert indices.tolist() == [[3, 2], [3, 2], [3, 2]]
    assert values.tolist() == [[3, 2], [7, 6], [11, 10]]
    with pytest.raises(ValueError, match=r"unknown dtype 'float64'"):
        _C.Params(x.ctypes.data, "float64", 3, 4, 4, 2, values.ctypes.data, 0)
    with pytest.raises(ValueError, match=r"unknown index dtype 'int16'"):
        _C.Params(x.ctypes.data, "float32", 3, 4, 4, 2, values.ctypes.data, 0, "int16")
    with pytest.raises(ValueError, match=r"unknown algorithm 'nope'"):
        _C.Params(x.ctypes.data, "float32", 3, 4, 4, 2, values.ctypes.data, 0, algorithm="nope")
    # kInvalidArgument -> ValueError
    bad = _C.Params(x.ctypes.data, "float32", 3, 4, 4, 5, values.ctypes.data, 0)
    with pytest.raises(ValueError, match=r"k \(5\) must be <= cols \(4\)"):
        _C.topk_host(bad)
    nothing = _C.Params(x.ctypes.data, "float32", 3, 4, 4, 2, 0, 0)
    with pytest.raises(ValueError, match=r"values and indices are both null"):
        _C.topk_host(nothing)
    if not _C.cuda_compiled():
        # kUnsupported without CUDA -> RuntimeError, forced algorithm or not.
        forced = _C.Params(
            x.ctypes.data, "float32", 3, 4, 4, 2, values.ctypes.data, 0, algorithm="block_per_row"
        )
        for params in (p, forced):
            with pytest.raises(RuntimeError, match=r"built without CUDA"):
                _C.workspace_size(params)
            with pytest.raises(RuntimeError, match=r"built without CUDA"):
                _C.topk_cuda(params, 0, 0, 0)
            with pytest.raises(RuntimeError, match=r"built without CUDA"):
                _C.chosen_algorithm(params)
