"""torch CUDA tensors: against torch.topk and (exactly) against the CPU path,
every dtype and algorithm, per-row arguments, torch.compile(fullgraph=True),
CUDA graph capture and replay, non-default streams and devices, autograd.

Skipped (visibly, reason "no CUDA GPU: ...") without torch, without a CUDA
device, or with a build without CUDA; FASTTOPK_REQUIRE_GPU=1 turns that into
an error.
"""

import os

import numpy as np
import pytest

from fasttopk_testing import gpu_status

_AVAILABLE, _DETAIL = gpu_status()
if not _AVAILABLE:
    if os.environ.get("FASTTOPK_REQUIRE_GPU", "") not in ("", "0"):
        pytest.fail(f"FASTTOPK_REQUIRE_GPU is set but {_DETAIL}", pytrace=False)
    pytest.skip(_DETAIL, allow_module_level=True)

import torch  # noqa: E402

import fasttopk  # noqa: E402
from fasttopk_testing import (  # noqa: E402
    assert_direct_body_matches_op,
    assert_same_result,
    check_torch_result,
    make_torch_input,
    torch_bits,
)

DTYPES = ["float32", "float16", "bfloat16"]
ALGORITHMS = ["auto"] + list(fasttopk.algorithms())

# (shape, dim, ks): small and odd sizes, a long row, many short rows.
SHAPES = [
    ((1, 1), -1, [0, 1]),
    ((3, 100), -1, [1, 7, 100]),
    ((5, 3, 300), 1, [2, 3]),
    ((64, 1000), -1, [1, 32, 999]),
    ((17, 4097), -1, [0, 256, 4097]),
    ((2, 70000), -1, [5, 1024]),
    ((2048, 48), -1, [8, 48]),
    ((300, 6), 0, [150]),
]


def cpu_reference(x, k, **kwargs):
    cpu_kwargs = {key: (v.cpu() if isinstance(v, torch.Tensor) else v) for key, v in kwargs.items()}
    return fasttopk.topk(x.cpu(), k, **cpu_kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
def test_against_torch_topk(dtype, largest):
    gen = torch.Generator(device="cuda").manual_seed(0)
    for shape, dim, ks in SHAPES:
        x = torch.randn(shape, device="cuda", generator=gen).to(getattr(torch, dtype))
        for k in ks:
            ours = fasttopk.topk(x, k, dim=dim, largest=largest)
            ref = torch.topk(x, k, dim=dim, largest=largest)
            assert ours.values.device == x.device and ours.indices.dtype == torch.int64
            np.testing.assert_array_equal(torch_bits(ours.values), torch_bits(ref.values))
            if k == 0:
                continue
            xr = x.movedim(dim, -1)
            vr = ours.values.movedim(dim, -1)
            unique = (xr.unsqueeze(-2) == vr.unsqueeze(-1)).sum(-1) == 1
            got = ours.indices.movedim(dim, -1)[unique]
            want = ref.indices.movedim(dim, -1)[unique]
            assert torch.equal(got, want), f"{shape} dim={dim} k={k}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("sorted_", [True, False])
def test_exact_against_cpu_path_and_oracle(dtype, kind, largest, sorted_):
    rng = np.random.default_rng(17)
    for shape, dim, ks in SHAPES:
        if shape[0] * shape[-1] > 200_000:
            continue  # the Python oracle is slow; the CPU path covers big shapes below
        x = make_torch_input(rng, shape, dtype, kind, "cuda")
        for k in ks:
            ours = fasttopk.topk(x, k, dim=dim, largest=largest, sorted=sorted_)
            check_torch_result(x, k, dim, largest, sorted_, ours)
            if sorted_:
                assert_same_result(ours, cpu_reference(x, k, dim=dim, largest=largest))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_rows_exact_against_cpu_path(dtype):
    rng = np.random.default_rng(18)
    for shape, k in [((4, 1 << 20), 1000), ((1, 3_000_000), 20_000), ((8192, 512), 64)]:
        x = make_torch_input(rng, shape, dtype, "special", "cuda")
        for largest in (True, False):
            assert_same_result(
                fasttopk.topk(x, k, largest=largest), cpu_reference(x, k, largest=largest)
            )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_algorithm_forced(algorithm, dtype):
    rng = np.random.default_rng(19)
    ran = 0
    for shape, dim, ks in SHAPES:
        x = make_torch_input(rng, shape, dtype, "special", "cuda")
        for k in ks:
            for largest in (True, False):
                try:
                    ours = fasttopk.topk(x, k, dim=dim, largest=largest, algorithm=algorithm)
                except ValueError as error:
                    # A forced fast path may reject a shape, with a message saying so;
                    # "auto" and the block-per-row fallback take every shape.
                    assert algorithm not in ("auto", "block_per_row"), error
                    assert "cannot run this problem" in str(error)
                    continue
                assert_same_result(ours, cpu_reference(x, k, dim=dim, largest=largest))
                ran += k > 0  # k = 0 is an empty problem that no algorithm sees
    # Every algorithm the library lists must take some of these shapes.
    assert ran > 0, f"algorithm {algorithm!r} took none of the test shapes"


def test_chosen_algorithm():
    x = torch.randn(64, 1000, device="cuda")
    assert fasttopk.chosen_algorithm(x, 10) in fasttopk.algorithms()
    for name in fasttopk.algorithms():
        try:
            assert fasttopk.chosen_algorithm(x, 10, algorithm=name) == name
        except ValueError as error:
            assert "cannot run this problem" in str(error)
    assert fasttopk.chosen_algorithm(x, 0) == "auto"  # empty problem: nothing chosen


def test_non_contiguous_inputs():
    rng = np.random.default_rng(20)
    base = make_torch_input(rng, (40, 300), "float32", "special", "cuda")
    cube = make_torch_input(rng, (6, 50, 7), "bfloat16", "ties", "cuda")
    cases = [
        ("transposed", base.t(), -1),
        ("column slice (row stride)", base[:, 3:251], -1),
        ("step 2", base[:, ::2], -1),
        ("every other row", base[::2], -1),
        ("expanded rows", base[0].expand(5, 300), -1),
        ("permuted 3-d", cube.permute(2, 0, 1), 1),
        ("3-d middle dim", cube, 1),
        ("3-d slice", cube[:, 2:49, ::3], 1),
    ]
    for name, x, dim in cases:
        k = x.shape[dim] // 3 + 1
        for largest in (True, False):
            ours = fasttopk.topk(x, k, dim=dim, largest=largest)
            try:
                check_torch_result(x, k, dim, largest, True, ours)
                assert_same_result(ours, cpu_reference(x, k, dim=dim, largest=largest))
            except AssertionError as error:
                raise AssertionError(f"case {name!r}, largest={largest}: {error}") from error


def test_shapes_zero_dim_empty_and_k_zero():
    x = torch.tensor(-2.5, device="cuda", dtype=torch.float16)
    for k in (0, 1):
        values, indices = fasttopk.topk(x, k)
        assert values.shape == () and values.device == x.device
        assert values.item() == -2.5 and indices.item() == 0
    for shape, dim, k in [((0, 5), -1, 3), ((4, 0), -1, 0), ((3, 0, 2), 1, 0), ((6, 5), 0, 0)]:
        x = torch.zeros(shape, device="cuda")
        values, indices = fasttopk.topk(x, k, dim=dim)
        ref = torch.topk(x, k, dim=dim)
        assert values.shape == ref.values.shape and indices.shape == ref.indices.shape
        assert values.device == x.device


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
def test_per_row_arguments(dtype, largest):
    rng = np.random.default_rng(22)
    for rows, cols, k in [(9, 30, 12), (300, 1000, 64), (4, 70000, 500)]:
        x = make_torch_input(rng, (rows, cols), dtype, "special", "cuda")
        kpr = torch.from_numpy(rng.integers(0, k + 1, rows)).to("cuda", torch.int32)
        lens = torch.from_numpy(rng.integers(0, cols + 1, rows)).to("cuda", torch.int32)
        kpr[0], lens[1] = k, 0
        for a, b in ((kpr, None), (None, lens), (kpr, lens)):
            for sorted_ in (True, False):
                ours = fasttopk.topk(x, k, largest=largest, sorted=sorted_, k_per_row=a, lengths=b)
                if rows * cols <= 300_000:
                    check_torch_result(x, k, -1, largest, sorted_, ours, a, b)
                if sorted_:
                    assert_same_result(
                        ours, cpu_reference(x, k, largest=largest, k_per_row=a, lengths=b)
                    )


def test_per_row_conversions_and_errors():
    x = torch.randn(3, 16, 4, device="cuda")  # dim=1: rows are (3, 4)
    kpr = torch.randint(0, 7, (3, 4), device="cuda", dtype=torch.int32)
    lens = torch.randint(0, 17, (3, 4), device="cuda", dtype=torch.int32)
    want = fasttopk.topk(x, 6, dim=1, k_per_row=kpr, lengths=lens)
    check_torch_result(x, 6, 1, True, True, want, kpr, lens)
    for a, b in [
        (kpr.long(), lens.cpu()),
        (kpr.cpu().numpy(), lens.reshape(-1).tolist()),
        (kpr.t().contiguous().t(), lens.to(torch.int16)),
    ]:
        assert_same_result(fasttopk.topk(x, 6, dim=1, k_per_row=a, lengths=b), want)
    with pytest.raises(ValueError, match=r"k_per_row\[5\] = 7 is outside \[0, k = 6\]"):
        bad = kpr.clone()
        bad.view(-1)[5] = 7
        fasttopk.topk(x, 6, dim=1, k_per_row=bad)
    with pytest.raises(
        ValueError, match=r"lengths\[11\] = -3 is outside \[0, size of dim 1 = 16\]"
    ):
        bad = lens.clone()
        bad.view(-1)[11] = -3
        fasttopk.topk(x, 6, dim=1, lengths=bad)
    with pytest.raises(TypeError, match=r"k_per_row must hold integers"):
        fasttopk.topk(x, 6, dim=1, k_per_row=kpr.float())


def test_int32_indices_and_out():
    rng = np.random.default_rng(23)
    x = make_torch_input(rng, (33, 500), "bfloat16", "special", "cuda")
    ours = fasttopk.topk(x, 40, index_dtype=torch.int32)
    assert ours.indices.dtype == torch.int32
    check_torch_result(x, 40, -1, True, True, ours)
    values = torch.empty(33, 40, device="cuda", dtype=torch.bfloat16)
    indices = torch.empty(33, 40, device="cuda", dtype=torch.int32)
    result = fasttopk.topk(x, 40, index_dtype=torch.int32, out=(values, indices))
    assert result.values is values and result.indices is indices
    assert_same_result(result, ours)
    with pytest.raises(ValueError, match=r"out values is on cpu, expected cuda"):
        fasttopk.topk(x, 40, index_dtype=torch.int32, out=(values.cpu(), indices))
    # Outputs without elements are resized, as torch.topk's out= does.
    empty = (torch.empty(0, device="cuda", dtype=torch.bfloat16),
             torch.empty(0, device="cuda", dtype=torch.int32))
    result = fasttopk.topk(x, 40, index_dtype=torch.int32, out=empty)
    assert result.values is empty[0] and tuple(empty[1].shape) == (33, 40)
    assert_same_result(result, ours)


@pytest.mark.filterwarnings("error:.*batching rule:UserWarning")
@pytest.mark.skipif(
    not hasattr(torch.library, "register_vmap"), reason="vmap rules need torch >= 2.4"
)
def test_vmap_batching_rule_matches_a_loop():
    rng = np.random.default_rng(43)
    x = make_torch_input(rng, (3, 8, 5000), "float16", "special", "cuda")
    k_rows = torch.tensor(rng.integers(0, 65, (3, 8)), dtype=torch.int32, device="cuda")
    ours = torch.func.vmap(lambda t, kr: fasttopk.topk(t, 64, k_per_row=kr))(x, k_rows)
    loop = [fasttopk.topk(x[b], 64, k_per_row=k_rows[b]) for b in range(3)]
    assert_same_result(ours, (torch.stack([r[0] for r in loop]), torch.stack([r[1] for r in loop])))


def test_torch_compile_fullgraph():
    def f(x, kpr, lens):
        top = fasttopk.topk(x, 16, dim=0, k_per_row=kpr, lengths=lens)
        small = fasttopk.topk(x * 2, 4, largest=False, index_dtype=torch.int32)
        return top.values.float() + 1, top.indices, small.values, small.indices

    compiled = torch.compile(f, fullgraph=True)
    rng = np.random.default_rng(24)
    for shape in [(100, 33), (100, 33), (257, 40)]:
        x = make_torch_input(rng, shape, "float16", "ties", "cuda")
        kpr = torch.randint(0, 17, (shape[1],), device="cuda", dtype=torch.int32)
        lens = torch.randint(0, shape[0] + 1, (shape[1],), device="cuda", dtype=torch.int32)
        got = compiled(x, kpr, lens)
        want = f(x, kpr, lens)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_torch_compile_dynamic_shapes():
    compiled = torch.compile(lambda x, k: fasttopk.topk(x, k), fullgraph=True, dynamic=True)
    rng = np.random.default_rng(25)
    for rows, cols, k in [(8, 100, 5), (13, 250, 9), (3, 4000, 77)]:
        x = make_torch_input(rng, (rows, cols), "float32", "special", "cuda")
        assert_same_result(compiled(x, k), fasttopk.topk(x, k))


def test_runs_in_order_on_the_current_stream():
    """A call is ordered on the caller's current stream: here a side stream
    that first spins (~0.1 s at GPU clocks) and then writes the input. A launch
    on any other stream would run at once and read the zeros."""
    rng = np.random.default_rng(27)
    fresh = make_torch_input(rng, (4, 4096), "float32", "normal", "cuda")
    expected = fasttopk.topk(fresh, 8)
    x = torch.zeros_like(fresh)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)
        x.copy_(fresh)
        got = fasttopk.topk(x, 8)
    torch.cuda.synchronize()
    assert_same_result(got, expected)


def _warm_up(fn):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_graph_capture_and_replay(dtype):
    rng = np.random.default_rng(26)
    rows, cols, k = 48, 3000, 100
    static_x = make_torch_input(rng, (rows, cols), dtype, "normal", "cuda")
    static_k = torch.randint(0, k + 1, (rows,), device="cuda", dtype=torch.int32)
    static_len = torch.randint(0, cols + 1, (rows,), device="cuda", dtype=torch.int32)

    def run():
        return (
            fasttopk.topk(static_x, k),
            fasttopk.topk(static_x, 20, dim=0, largest=False, index_dtype=torch.int32),
            fasttopk.topk(static_x, k, k_per_row=static_k, lengths=static_len),
        )

    _warm_up(run)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()
    for kind in ("special", "ties", "normal"):
        static_x.copy_(make_torch_input(rng, (rows, cols), dtype, kind, "cuda"))
        static_k.copy_(torch.randint(0, k + 1, (rows,), device="cuda", dtype=torch.int32))
        static_len.copy_(torch.randint(0, cols + 1, (rows,), device="cuda", dtype=torch.int32))
        graph.replay()
        torch.cuda.synchronize()
        eager = run()
        assert len(captured) == len(eager)
        for got, want in zip(captured, eager):
            assert_same_result(got, want)
        assert_same_result(captured[0], cpu_reference(static_x, k))
        check_torch_result(static_x, k, -1, True, True, captured[2], static_k, static_len)


def test_out_of_range_per_row_under_capture_writes_sentinel_rows():
    x = torch.arange(20, dtype=torch.float32, device="cuda").reshape(4, 5)
    kpr = torch.tensor([2, 99, -1, 3], dtype=torch.int32, device="cuda")
    lens = torch.tensor([5, 5, 5, 77], dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match=r"k_per_row\[1\] = 99 is outside"):
        fasttopk.topk(x, 3, k_per_row=kpr, lengths=lens)  # eager: checked
    good_k = torch.full((4,), 3, dtype=torch.int32, device="cuda")
    _warm_up(lambda: fasttopk.topk(x, 3, k_per_row=good_k, lengths=good_k))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        values, indices = fasttopk.topk(x, 3, k_per_row=kpr, lengths=lens)
    graph.replay()
    torch.cuda.synchronize()
    inf = float("inf")
    assert indices.tolist() == [[4, 3, -1], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    assert values.tolist() == [
        [4.0, 3.0, -inf],
        [-inf, -inf, -inf],
        [-inf, -inf, -inf],
        [-inf, -inf, -inf],
    ]


def test_runs_on_the_current_stream():
    # x is rewritten on a side stream after a long sleep; a launch on any other
    # stream than the side stream would read the old zeros.
    rows, cols, k = 64, 8192, 10
    gen = torch.Generator(device="cuda").manual_seed(27)
    fresh = torch.randn(rows, cols, device="cuda", generator=gen)
    x = torch.zeros(rows, cols, device="cuda")
    fasttopk.topk(x, k)  # warm up (device facts, module loading)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)
        x.copy_(fresh)
        result = fasttopk.topk(x, k)
    side.synchronize()
    assert_same_result(result, cpu_reference(fresh, k))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_tensor_on_another_device():
    x = torch.randn(16, 5000, device="cuda:1")
    kpr = torch.randint(0, 11, (16,), device="cuda:0", dtype=torch.int32)  # moved to cuda:1
    with torch.cuda.device(0):
        ours = fasttopk.topk(x, 10, k_per_row=kpr)
    assert ours.values.device == x.device
    assert_same_result(ours, cpu_reference(x, 10, k_per_row=kpr))


@pytest.mark.parametrize("dim", [-1, 0])
def test_autograd_matches_torch_topk(dim):
    gen = torch.Generator(device="cuda").manual_seed(28)
    x = torch.randn(6, 200, device="cuda", generator=gen, requires_grad=True)
    weight = torch.randn(*((6, 5) if dim == -1 else (5, 200)), device="cuda", generator=gen)
    (fasttopk.topk(x, 5, dim=dim).values * weight).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (torch.topk(x, 5, dim=dim).values * weight).sum().backward()
    assert torch.equal(ours, x.grad)


def test_eager_calls_run_the_op_body_directly():
    # Eager calls without autograd skip the custom op's dispatch (_eager_direct);
    # the body and the dispatched op must give the same tensors, on the current
    # stream, also while a CUDA graph is captured.
    from fasttopk import _torch

    gen = torch.Generator(device="cuda").manual_seed(29)
    x = torch.randn(9, 70000, device="cuda", generator=gen).to(torch.bfloat16)
    kpr = torch.tensor([0, 1, 50, 50, 2, 3, 50, 7, 9], dtype=torch.int32, device="cuda")
    assert _torch._eager_direct(x)
    assert_direct_body_matches_op(
        x,
        (
            (50, True, True, None, None, False, "auto"),
            (50, False, True, kpr, None, True, "auto"),
        ),
    )
    static = x.clone()
    eager = fasttopk.topk(static, 50)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = fasttopk.topk(static, 50)
    static.copy_(torch.randn(9, 70000, device="cuda", generator=gen).to(torch.bfloat16))
    graph.replay()
    torch.cuda.synchronize()
    again = fasttopk.topk(static, 50)
    assert torch.equal(captured.values, again.values)
    assert torch.equal(captured.indices, again.indices)
    assert not torch.equal(eager.values, again.values)


def test_opcheck():
    x = torch.randn(7, 300, device="cuda")
    kpr = torch.tensor([0, 1, 4, 4, 2, 3, 4], dtype=torch.int32, device="cuda")
    lens = torch.tensor([300, 3, 0, 12, 7, 299, 150], dtype=torch.int32, device="cuda")
    for args in [
        (x, 4, True, True, None, None, False, "auto"),
        (x.to(torch.bfloat16), 4, False, False, kpr, lens, True, "auto"),
        (x.t(), 2, True, True, None, None, False, "auto"),
        (x.clone().requires_grad_(), 4, True, True, kpr, None, False, "auto"),
    ]:
        torch.library.opcheck(torch.ops.fasttopk.topk.default, args)
