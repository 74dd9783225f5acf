"""torch CPU tensors: the oracle, the numpy path, torch.topk, autograd, the
custom op (opcheck) and torch.compile. Skipped when torch is not installed."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

import fasttopk  # noqa: E402
from fasttopk_testing import (  # noqa: E402
    RANDOM_CASES,
    assert_direct_body_matches_op,
    assert_same_result,
    check_torch_result,
    make_torch_input,
    torch_bits,
)

DTYPES = ["float32", "float16", "bfloat16"]
KINDS = ["normal", "ties", "special"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("sorted_", [True, False])
def test_random_against_oracle(dtype, kind, largest, sorted_):
    rng = np.random.default_rng(99)
    for shape, dim in RANDOM_CASES:
        x = make_torch_input(rng, shape, dtype, kind)
        n = shape[dim]
        for k in sorted({0, 1, n // 2, n}):
            result = fasttopk.topk(x, k, dim=dim, largest=largest, sorted=sorted_)
            assert isinstance(result.values, torch.Tensor)
            assert result.indices.dtype == torch.int64
            check_torch_result(x, k, dim, largest, sorted_, result)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_same_as_numpy_path(dtype):
    rng = np.random.default_rng(5)
    x = make_torch_input(rng, (9, 70), dtype, "special")
    for largest in (True, False):
        t = fasttopk.topk(x, 20, largest=largest)
        n = fasttopk.topk(x.numpy(), 20, largest=largest)
        np.testing.assert_array_equal(
            torch_bits(t.values), n.values.view(torch_bits(t.values).dtype)
        )
        np.testing.assert_array_equal(t.indices.numpy(), n.indices)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
def test_against_torch_topk(dtype, largest):
    gen = torch.Generator().manual_seed(0)
    for shape, dim, k in [
        ((8, 100), -1, 10),
        ((8, 100), 0, 3),
        ((4, 5, 64), 2, 64),
        ((1000,), 0, 999),
    ]:
        x = torch.randn(shape, generator=gen).to(getattr(torch, dtype))
        ours = fasttopk.topk(x, k, dim=dim, largest=largest)
        ref = torch.topk(x, k, dim=dim, largest=largest)
        np.testing.assert_array_equal(torch_bits(ours.values), torch_bits(ref.values))
        # Indices must agree wherever the selected value is unique in its row.
        xr = x.movedim(dim, -1)
        vr = ours.values.movedim(dim, -1)
        counts = (xr.unsqueeze(-2) == vr.unsqueeze(-1)).sum(-1)
        unique = counts == 1
        assert bool(unique.any())
        assert torch.equal(
            ours.indices.movedim(dim, -1)[unique], ref.indices.movedim(dim, -1)[unique]
        )


def test_keyword_call_of_torch_topk():
    # Code that calls torch.topk by keyword (input=, k=, dim=, largest=,
    # sorted=, out=) runs unchanged with fasttopk.topk.
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(1))
    kwargs = dict(input=x, k=5, dim=0, largest=False, sorted=True)
    ours, ref = fasttopk.topk(**kwargs), torch.topk(**kwargs)
    assert torch.equal(ours.values, ref.values) and torch.equal(ours.indices, ref.indices)
    out = (torch.empty(0), torch.empty(0, dtype=torch.int64))
    returned = fasttopk.topk(input=x, k=3, out=out)
    assert returned.values is out[0] and torch.equal(out[0], torch.topk(x, 3).values)
    assert fasttopk.chosen_algorithm(input=x, k=3) == "host"
    # numpy's bool is taken as a bool (torch.topk refuses it; numpy callers pass it).
    flipped = fasttopk.topk(x, 2, largest=np.False_, sorted=np.True_)
    assert torch.equal(flipped.values, torch.topk(x, 2, largest=False).values)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(12)
    base = make_torch_input(rng, (12, 40), "bfloat16", "special")
    cube = make_torch_input(rng, (3, 10, 7), "float16", "ties")
    cases = [
        ("transposed", base.t(), -1),
        ("column slice", base[:, 3:31], -1),
        ("step 2", base[:, ::2], -1),
        ("every other row", base[::2], -1),
        ("expanded rows", base[0].expand(5, 40), -1),
        ("permuted 3-d", cube.permute(2, 0, 1), 1),
        ("3-d slice", cube[:, 2:9, ::3], 1),
        ("3-d dim 0", cube, 0),
    ]
    for name, x, dim in cases:
        k = x.shape[dim] // 2 + 1
        for largest in (True, False):
            result = fasttopk.topk(x, k, dim=dim, largest=largest)
            try:
                check_torch_result(x, k, dim, largest, True, result)
                contiguous = fasttopk.topk(x.contiguous(), k, dim=dim, largest=largest)
                assert_same_result(result, contiguous)
            except AssertionError as error:
                raise AssertionError(f"case {name!r}, largest={largest}: {error}") from error


def test_shapes_zero_dim_empty_and_k_zero():
    x = torch.tensor(1.5, dtype=torch.bfloat16)
    for k in (0, 1):
        values, indices = fasttopk.topk(x, k)
        ref = torch.topk(x, k)
        assert values.shape == ref.values.shape == () and indices.shape == ()
        assert values.item() == 1.5 and indices.item() == 0
    for shape, dim, k in [((0, 5), -1, 3), ((4, 0), -1, 0), ((3, 0, 2), 1, 0), ((6, 5), 0, 0)]:
        x = torch.zeros(shape)
        values, indices = fasttopk.topk(x, k, dim=dim)
        ref = torch.topk(x, k, dim=dim)
        assert values.shape == ref.values.shape and indices.shape == ref.indices.shape
        assert indices.dtype == torch.int64


def test_per_row_arguments():
    rng = np.random.default_rng(30)
    x = make_torch_input(rng, (3, 16, 4), "float32", "special")  # dim=1: rows are (3, 4)
    k = 6
    kpr = torch.from_numpy(rng.integers(0, k + 1, (3, 4))).to(torch.int32)
    lens = torch.from_numpy(rng.integers(0, 17, (3, 4))).to(torch.int32)
    want = fasttopk.topk(x, k, dim=1, k_per_row=kpr, lengths=lens)
    check_torch_result(x, k, 1, True, True, want, kpr, lens)
    for a, b in [
        (kpr.reshape(-1), lens.reshape(-1)),
        (kpr.long(), lens.to(torch.uint8)),
        (kpr.tolist(), lens.numpy()),
        (kpr.t().contiguous().t(), lens),
    ]:
        assert_same_result(fasttopk.topk(x, k, dim=1, k_per_row=a, lengths=b), want)
    # Small integer dtypes with bounds they cannot represent (cols = 300 > 255).
    wide = make_torch_input(rng, (2, 300), "float16", "ties")
    lens8 = torch.tensor([200, 3], dtype=torch.uint8)
    kpr8 = torch.tensor([100, 2], dtype=torch.int8)
    got = fasttopk.topk(wide, 280, k_per_row=kpr8, lengths=lens8)
    check_torch_result(wide, 280, -1, True, True, got, kpr8, lens8)
    values, indices = fasttopk.topk(
        torch.tensor([[5.0, 1.0, 3.0], [4.0, 8.0, 6.0]]),
        2,
        k_per_row=torch.tensor([1, 2]),
        lengths=torch.tensor([3, 1]),
    )
    assert indices.tolist() == [[0, -1], [0, -1]]
    assert values.tolist() == [[5.0, float("-inf")], [4.0, float("-inf")]]


def test_int32_indices_and_out():
    rng = np.random.default_rng(31)
    x = make_torch_input(rng, (6, 50), "float16", "special")
    for index_dtype in (torch.int32, "int32", np.int32):
        result = fasttopk.topk(x, 7, index_dtype=index_dtype)
        assert result.indices.dtype == torch.int32
        check_torch_result(x, 7, -1, True, True, result)
    values = torch.empty(6, 7, dtype=torch.float16)
    indices = torch.empty(6, 7, dtype=torch.int64)
    result = fasttopk.topk(x, 7, out=(values, indices))
    assert result.values is values and result.indices is indices
    check_torch_result(x, 7, -1, True, True, result)
    with pytest.raises(
        TypeError, match=r"out values has dtype torch.float32, expected torch.float16"
    ):
        fasttopk.topk(x, 7, out=(torch.empty(6, 7), indices))
    with pytest.raises(ValueError, match=r"out indices has shape \(6, 6\), expected \(6, 7\)"):
        fasttopk.topk(x, 7, out=(values, torch.empty(6, 6, dtype=torch.int64)))
    # Outputs without elements are resized to the result's shape, as torch.topk's
    # out= does (here along dim 0, so the shape is (3, 50)).
    empty_values = torch.empty(0, dtype=torch.float16)
    empty_indices = torch.empty(2, 0, dtype=torch.int64)
    result = fasttopk.topk(x, 3, dim=0, out=(empty_values, empty_indices))
    assert result.values is empty_values and result.indices is empty_indices
    assert tuple(empty_values.shape) == (3, 50) and tuple(empty_indices.shape) == (3, 50)
    check_torch_result(x, 3, 0, True, True, result)
    # A mismatched output that has elements is not resized (torch warns that it
    # will stop doing so): an error, and the tensor is left as it was.
    wrong = torch.zeros(2, 7, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"out values has shape \(2, 7\), expected \(6, 7\)"):
        fasttopk.topk(x, 7, out=(wrong, indices))
    assert tuple(wrong.shape) == (2, 7) and not wrong.any()
    # Nothing is resized unless both outputs pass their checks.
    empty_values = torch.empty(0, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"out indices has shape \(6, 6\), expected \(6, 7\)"):
        fasttopk.topk(x, 7, out=(empty_values, torch.empty(6, 6, dtype=torch.int64)))
    assert tuple(empty_values.shape) == (0,)


def test_errors():
    x = torch.ones(2, 3)
    supported = r"supported dtypes are torch.float32, torch.float16 and torch.bfloat16"
    with pytest.raises(TypeError, match=r"unsupported dtype torch.float64; " + supported):
        fasttopk.topk(torch.ones(3, dtype=torch.float64), 1)
    with pytest.raises(TypeError, match=r"unsupported dtype torch.int64"):
        fasttopk.topk(torch.arange(3), 1)
    with pytest.raises(TypeError, match=r"k must be an int, got bool"):
        fasttopk.topk(x, False)
    # torch.topk takes only bools for largest and sorted; truthiness would let
    # sorted=None or largest="False" pass as something else.
    for name, bad in (("largest", "False"), ("largest", 0), ("sorted", None)):
        with pytest.raises(TypeError, match=rf"{name} must be a bool, got {type(bad).__name__}"):
            fasttopk.topk(x, 1, **{name: bad})
        with pytest.raises(TypeError):
            torch.topk(x, 1, **{name: bad})
    with pytest.raises(ValueError, match=r"k = 4 is out of range for dimension 1 of size 3"):
        fasttopk.topk(x, 4)
    with pytest.raises(ValueError, match=r"dim -3 is out of range for a 2-d input"):
        fasttopk.topk(x, 1, dim=-3)
    # Code written for torch.topk catches what torch raises there.
    with pytest.raises(RuntimeError, match=r"k = 4 is out of range"):
        fasttopk.topk(x, 4)
    with pytest.raises(RuntimeError, match=r"k = -1 is out of range"):
        fasttopk.topk(x, -1)
    with pytest.raises(IndexError, match=r"dim 2 is out of range"):
        fasttopk.topk(x, 1, dim=2)
    for bad_call in (lambda: torch.topk(x, 4), lambda: torch.topk(x, -1)):
        with pytest.raises(RuntimeError):
            bad_call()
    with pytest.raises(IndexError):
        torch.topk(x, 1, dim=2)
    with pytest.raises(TypeError, match=r"k_per_row must hold integers, got dtype torch.float32"):
        fasttopk.topk(x, 1, k_per_row=torch.ones(2))
    with pytest.raises(
        ValueError,
        match=r"lengths must have one entry per row: shape \(2,\) or \(2,\), got shape \(1, 2\)",
    ):
        fasttopk.topk(x, 1, lengths=torch.ones(1, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"k_per_row\[1\] = 2 is outside \[0, k = 1\]"):
        fasttopk.topk(x, 1, k_per_row=torch.tensor([0, 2], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"lengths\[0\] = -1 is outside \[0, size of dim 1 = 3\]"):
        fasttopk.topk(x, 1, lengths=torch.tensor([-1, 2]))
    with pytest.raises(TypeError, match=r"index_dtype must be int32 or int64"):
        fasttopk.topk(x, 1, index_dtype=torch.int16)
    with pytest.raises(ValueError, match=r"unknown algorithm 'x'"):
        fasttopk.topk(x, 1, algorithm="x")
    for name in fasttopk.algorithms():
        with pytest.raises(ValueError, match=rf"algorithm '{name}' is a GPU algorithm"):
            fasttopk.topk(x, 1, algorithm=name)


def test_meta_tensors_give_shapes():
    x = torch.empty(3, 7, 5, device="meta", dtype=torch.bfloat16)
    values, indices = fasttopk.topk(x, 4, dim=1, index_dtype=torch.int32)
    assert values.device.type == "meta" and values.shape == (3, 4, 5)
    assert values.dtype == torch.bfloat16 and indices.dtype == torch.int32


def test_chosen_algorithm_on_cpu():
    assert fasttopk.chosen_algorithm(torch.ones(2, 3), 2) == "host"


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the ops that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_eager_calls_run_the_op_body_directly_and_modes_still_see_the_op():
    from fasttopk import _torch

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 300, generator=gen).to(torch.bfloat16)
    k_rows = torch.tensor([1, 0, 7, 5, 3], dtype=torch.int32)
    lengths = torch.tensor([300, 10, 299, 64, 1], dtype=torch.int32)
    assert_direct_body_matches_op(
        x,
        (
            (40, True, True, None, None, False, "auto"),
            (7, False, True, k_rows, lengths, True, "auto"),
        ),
    )
    assert _torch._eager_direct(x)
    # Autograd needs the op (its backward), so does a mode that watches ops.
    assert not _torch._eager_direct(torch.ones(2, 3, requires_grad=True))
    with torch.no_grad():
        assert _torch._eager_direct(torch.ones(2, 3, requires_grad=True))
    log = _OpLog()
    with log:
        assert not _torch._eager_direct(x)
        values, indices = fasttopk.topk(x, 40)
    assert any("fasttopk.topk" in op for op in log.ops), log.ops
    # torch.jit.trace and torch.func transforms see the op too.
    traced = torch.jit.trace(lambda t: tuple(fasttopk.topk(t, 3)), torch.ones(2, 5))
    assert "fasttopk::topk" in str(traced.graph)
    seen = []
    torch.func.vmap(lambda t: seen.append(_torch._eager_direct(t)) or t)(torch.ones(2, 3))
    assert seen == [False]
    expected = torch.topk(x.float(), 40)
    assert torch.equal(values.float(), expected.values)


@pytest.mark.parametrize("dim", [-1, 0])
def test_autograd_matches_torch_topk(dim):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 20, generator=gen, requires_grad=True)
    weight = (
        torch.randn(6, 20, generator=gen)[:, :5] if dim == -1 else torch.randn(5, 20, generator=gen)
    )
    (fasttopk.topk(x, 5, dim=dim).values * weight).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (torch.topk(x, 5, dim=dim).values * weight).sum().backward()
    assert torch.equal(ours, x.grad)


def test_autograd_with_sentinels():
    x = torch.tensor([[3.0, 1.0, 2.0], [0.5, 0.25, 4.0]], requires_grad=True)
    values, indices = fasttopk.topk(x, 2, k_per_row=[1, 2])
    assert indices.tolist() == [[0, -1], [2, 0]]
    values.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]


def _stacked(results):
    return (torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results]))


@pytest.mark.filterwarnings("error:.*batching rule:UserWarning")
@pytest.mark.skipif(
    not hasattr(torch.library, "register_vmap"), reason="vmap rules need torch >= 2.4"
)
def test_vmap_batching_rule_matches_a_loop():
    """torch.func.vmap takes the op's batching rule (one call over the stacked
    rows; torch's per-entry fallback would warn, an error here) and gives
    exactly what a loop of calls gives."""
    rng = np.random.default_rng(41)
    x = make_torch_input(rng, (5, 4, 300), "bfloat16", "special")
    vmap = torch.func.vmap
    loop = _stacked([fasttopk.topk(x[b], 7) for b in range(5)])
    assert_same_result(vmap(lambda t: fasttopk.topk(t, 7))(x), loop)
    # The batch in another dim, and top k along each entry's dim 0.
    loop = _stacked([fasttopk.topk(x[:, i], 3, dim=0, largest=False) for i in range(4)])
    ours = vmap(lambda t: fasttopk.topk(t, 3, dim=0, largest=False), in_dims=1)(x)
    assert_same_result(ours, loop)
    # Per-row arguments, batched and shared.
    k_rows = torch.tensor(rng.integers(0, 8, (5, 4)), dtype=torch.int64)
    lengths = torch.tensor([300, 5, 0, 299], dtype=torch.int32)
    loop = _stacked(
        [fasttopk.topk(x[b], 7, k_per_row=k_rows[b], lengths=lengths) for b in range(5)]
    )
    ours = vmap(lambda t, kr: fasttopk.topk(t, 7, k_per_row=kr, lengths=lengths))(x, k_rows)
    assert_same_result(ours, loop)
    # Only the per-row argument batched: one input for every entry.
    loop = _stacked([fasttopk.topk(x[0], 7, k_per_row=k_rows[b]) for b in range(5)])
    assert_same_result(vmap(lambda kr: fasttopk.topk(x[0], 7, k_per_row=kr))(k_rows), loop)
    # Nested, and 1-d entries.
    nested = vmap(vmap(lambda t: fasttopk.topk(t, 2)))(x)
    assert_same_result(nested, fasttopk.topk(x, 2))
    assert_same_result(vmap(lambda t: fasttopk.topk(t, 4))(x[0]), fasttopk.topk(x[0], 4))
    # vmap cannot read a batched per-row value on the host; the CPU path
    # still rejects an entry out of range.
    # (The row is the stacked call's: batch entry 0, row 0 here.)
    with pytest.raises(ValueError, match=r"k_per_row\[0\] = 9 is outside \[0, k = 7\]"):
        bad = k_rows.clone()
        bad[0, 0] = 9
        vmap(lambda t, kr: fasttopk.topk(t, 7, k_per_row=kr))(x, bad)
    # Entries int32 cannot hold stay out of range (clamped, not wrapped).
    with pytest.raises(ValueError, match=r"row_lengths\[0\] = -1 is outside \[0, cols = 300\]"):
        vmap(lambda t: fasttopk.topk(t, 7, lengths=lengths.to(torch.int64) - 2**40))(x)
    # Gradients flow through the batched call.
    xg = x.float().clone().requires_grad_()
    weight = torch.randn(5, 4, 7, generator=torch.Generator().manual_seed(5))
    (vmap(lambda t: fasttopk.topk(t, 7).values)(xg).nan_to_num() * weight).sum().backward()
    ours = xg.grad.clone()
    xg.grad = None
    looped = torch.stack([fasttopk.topk(xg[b], 7).values for b in range(5)])
    (looped.nan_to_num() * weight).sum().backward()
    assert torch.equal(ours, xg.grad)


def _op_args():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 12, generator=gen)
    kpr = torch.tensor([0, 1, 4, 4, 2], dtype=torch.int32)
    lens = torch.tensor([12, 3, 0, 12, 7], dtype=torch.int32)
    return [
        (x, 4, True, True, None, None, False, "auto"),
        (x.to(torch.bfloat16), 4, False, True, kpr, lens, True, "auto"),
        (x.t(), 2, True, False, None, None, False, "auto"),
        (x.clone().requires_grad_(), 3, True, True, kpr.clamp(max=3), None, False, "auto"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_opcheck(case):
    args = _op_args()[case]
    torch.library.opcheck(torch.ops.fasttopk.topk.default, args)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(backend, dynamic):
    def f(x, kpr):
        top = fasttopk.topk(x, 3, dim=0, largest=False, k_per_row=kpr, index_dtype=torch.int32)
        return top.values * 2, top.indices

    compiled = torch.compile(f, fullgraph=True, backend=backend, dynamic=dynamic)
    gen = torch.Generator().manual_seed(3)
    for cols in (7, 9):
        x = torch.randn(10, cols, generator=gen)
        kpr = torch.arange(cols, dtype=torch.int32) % 4
        got = compiled(x, kpr)
        want = f(x, kpr)
        assert_same_result(got, want)
        check_torch_result(x, 3, 0, False, True, (got[0] / 2, got[1]), k_per_row=kpr)


def test_compile_when_fasttopk_is_imported_before_torch():
    # The torch front end is then loaded lazily, here from inside torch.compile.
    code = (
        "import fasttopk, sys\n"
        "assert 'fasttopk._torch' not in sys.modules\n"
        "import torch\n"
        "f = torch.compile(lambda x: fasttopk.topk(x, 2, dim=0), fullgraph=True, backend='eager')\n"
        "x = torch.tensor([[1.0, 5.0], [3.0, 2.0], [2.0, 7.0]])\n"
        "v, i = f(x)\n"
        "assert i.tolist() == [[1, 2], [2, 0]], i\n"
        "assert v.tolist() == [[3.0, 7.0], [2.0, 5.0]], v\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
