"""The torch front end and the torch custom ops.

Imported only when a torch tensor is first seen (or at ``import fasttopk``
when torch is already imported), so that fasttopk works without torch.

Ops (registered with torch.library, so torch.compile(fullgraph=True), CUDA
graph capture, FakeTensor/meta tensors and autograd all work):

``fasttopk::topk(Tensor x, SymInt k, bool largest, bool sorted,
Tensor? k_per_row, Tensor? lengths, bool int32_indices, str algorithm)
-> (Tensor values, Tensor indices)``
    ``x`` is [rows, cols] (any strides); the outputs are new contiguous
    [rows, k] tensors. ``k_per_row`` / ``lengths`` are int32 [rows] tensors on
    x's device. On CUDA it runs on the current stream of x's device with a
    workspace from torch's caching allocator; on the CPU it runs the host
    path. The gradient of ``values`` flows back to ``x`` (scattered to the
    selected indices; sentinel slots get none).
"""

from typing import Optional, Tuple

import torch

from . import _C
from ._common import (
    HOST_THREADS,
    CUDA_COMPILED,
    NO_CUDA_MESSAGE,
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

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
# The raw handle of a device's current stream, without building the
# torch.cuda.Stream that torch.cuda.current_stream() returns (torch's own
# generated code reads streams this way); None where this torch lacks it.
_current_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_DEVICE_TYPES = ("cpu", "cuda", "meta")


# ----------------------------------------------------------------------------
# The kernels behind the ops (run eagerly; never traced).
# ----------------------------------------------------------------------------


def _layout_ok(x2):
    """Whether the library can read [rows, cols] x2 in place: unit stride within
    a row and rows at least `cols` elements apart."""
    rows, cols = x2.shape
    return (cols <= 1 or x2.stride(1) == 1) and (rows <= 1 or x2.stride(0) >= cols)


def _params(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices):
    rows, cols = x2.shape
    return _C.Params(
        x2.data_ptr(),
        _DTYPE_NAMES[x2.dtype],
        rows,
        cols,
        x2.stride(0) if rows > 1 else cols,
        k,
        values.data_ptr(),
        indices.data_ptr(),
        "int32" if indices.dtype == torch.int32 else "int64",
        0 if k_per_row is None else k_per_row.data_ptr(),
        0 if lengths is None else lengths.data_ptr(),
        largest,
        sorted,
        algorithm,
    )


def _check_op_inputs(x, k_per_row, lengths):
    if x.dim() != 2:
        raise ValueError(f"fasttopk::topk: x must be 2-d [rows, cols], got shape {tuple(x.shape)}")
    if not _supported_dtype(x.dtype):
        raise TypeError(f"fasttopk::topk: unsupported dtype {x.dtype}")
    rows = x.shape[0]
    for t, name in ((k_per_row, "k_per_row"), (lengths, "lengths")):
        if t is None:
            continue
        if t.dtype != torch.int32 or t.device != x.device or t.shape != (rows,):
            raise ValueError(
                f"fasttopk::topk: {name} must be an int32 tensor of shape ({rows},) on "
                f"{x.device}, got {t.dtype} {tuple(t.shape)} on {t.device}"
            )


def _run(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices):
    """Writes the top k of each row of x2 into the contiguous [rows, k] outputs."""
    if not _layout_ok(x2):
        x2 = x2.contiguous()
    if k_per_row is not None:
        k_per_row = k_per_row.contiguous()
    if lengths is not None:
        lengths = lengths.contiguous()
    _launch(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)


def _launch(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices):
    """_run for inputs the library reads in place: x2 passes _layout_ok, the
    per-row tensors are contiguous int32 on x2's device."""
    device = x2.device
    if device.type == "cuda":
        if not CUDA_COMPILED:
            raise RuntimeError(NO_CUDA_MESSAGE)
        # The library launches on the calling thread's current device, so
        # that must be x's; a device context costs host time on every call,
        # so it is entered only where another device is current.
        if torch.cuda.current_device() == device.index:
            _run_cuda(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
        else:
            with torch.cuda.device(device):
                _run_cuda(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
    elif device.type == "cpu":
        params = _params(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
        _C.topk_host(params, HOST_THREADS)
    else:
        raise ValueError(f"fasttopk::topk: unsupported device {device}")


def _run_cuda(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices):
    """_run's CUDA launch, with x2's device current."""
    device = x2.device
    params = _params(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
    nbytes = _C.workspace_size(params)
    # torch's caching allocator: stream-ordered on the current stream, and
    # served from the graph's private pool while a CUDA graph is captured.
    # Most plans need none: no allocation then (~3 µs of host time).
    workspace = torch.empty(nbytes, dtype=torch.uint8, device=device) if nbytes else None
    if _current_raw_stream is not None:
        stream = _current_raw_stream(device.index)
    else:
        stream = torch.cuda.current_stream(device).cuda_stream
    _C.topk_cuda(params, workspace.data_ptr() if nbytes else 0, nbytes, stream)


def _topk_impl(x, k, largest, sorted, k_per_row, lengths, int32_indices, algorithm):
    """The op's body: new [rows, k] outputs, filled by _run."""
    _check_op_inputs(x, k_per_row, lengths)
    rows = x.shape[0]
    values = torch.empty((rows, k), dtype=x.dtype, device=x.device)
    indices = torch.empty(
        (rows, k), dtype=torch.int32 if int32_indices else torch.int64, device=x.device
    )
    _run(x, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
    return values, indices


def _topk_direct(x2, k, largest, sorted, k_per_row, lengths, int32_indices, algorithm):
    """An eager call's body without the op (see _eager_direct) for what
    _prepare returns, which already meets _check_op_inputs and _run's layout
    rules: no second check of either (~1.5 µs a call on a CPU host)."""
    rows = x2.shape[0]
    device = x2.device
    values = torch.empty((rows, k), dtype=x2.dtype, device=device)
    indices = torch.empty(
        (rows, k), dtype=torch.int32 if int32_indices else torch.int64, device=device
    )
    _launch(x2, k, largest, sorted, k_per_row, lengths, algorithm, values, indices)
    return values, indices


@torch.library.custom_op("fasttopk::topk", mutates_args=())
def _topk_op(
    x: torch.Tensor,
    k: int,
    largest: bool,
    sorted: bool,
    k_per_row: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor],
    int32_indices: bool,
    algorithm: str,
) -> Tuple[torch.Tensor, torch.Tensor]:
    return _topk_impl(x, k, largest, sorted, k_per_row, lengths, int32_indices, algorithm)


@_topk_op.register_fake
def _topk_fake(x, k, largest, sorted, k_per_row, lengths, int32_indices, algorithm):
    torch._check(x.dim() == 2, lambda: "fasttopk::topk: x must be 2-d [rows, cols]")
    rows = x.shape[0]
    values = x.new_empty((rows, k))
    indices = x.new_empty((rows, k), dtype=torch.int32 if int32_indices else torch.int64)
    return values, indices


def _topk_setup_context(ctx, inputs, output):
    ctx.x_shape = inputs[0].shape
    ctx.save_for_backward(output[1])


def _topk_backward(ctx, grad_values, grad_indices):
    (indices,) = ctx.saved_tensors
    grad_x = None
    if ctx.needs_input_grad[0]:
        index = indices.long()
        valid = index >= 0  # sentinel slots (index -1) carry no gradient
        source = torch.where(valid, grad_values, torch.zeros_like(grad_values))
        grad_x = grad_values.new_zeros(ctx.x_shape)
        grad_x.scatter_add_(1, index.clamp(min=0), source)
    return grad_x, None, None, None, None, None, None, None


_topk_op.register_autograd(_topk_backward, setup_context=_topk_setup_context)


def _topk_vmap(info, in_dims, x, k, largest, sorted, k_per_row, lengths, int32_indices, algorithm):
    """torch.func.vmap's batching rule: the batch's [rows, cols] inputs are
    one [batch * rows, cols] call (one launch), instead of torch's fallback of
    one call per batch entry (which also warns of its cost). Per-row tensors
    that are not batched are the same for every entry."""
    batch = info.batch_size

    def batch_first(t, dim):
        return t.movedim(dim, 0) if dim is not None else t.expand(batch, *t.shape)

    x_dim, k_dim, lengths_dim = in_dims[0], in_dims[4], in_dims[5]
    xb = batch_first(x, x_dim)
    rows, cols = xb.shape[1], xb.shape[2]
    flat = [
        None if t is None else batch_first(t, d).reshape(batch * rows)
        for t, d in ((k_per_row, k_dim), (lengths, lengths_dim))
    ]
    values, indices = _topk_op(
        xb.reshape(batch * rows, cols), k, largest, sorted, flat[0], flat[1], int32_indices,
        algorithm,
    )
    return (values.reshape(batch, rows, k), indices.reshape(batch, rows, k)), (0, 0)


if hasattr(_topk_op, "register_vmap"):  # torch >= 2.4
    _topk_op.register_vmap(_topk_vmap)

_topk = torch.ops.fasttopk.topk.default

# Python modes (TorchFunctionMode, TorchDispatchMode: FakeTensorMode, flop
# counters, debug modes) and torch.func transforms (vmap, grad: their wrapped
# tensors look like plain ones) must see the op; these private queries exist
# in torch >= 2.1, and without them every call takes the op.
_function_modes = getattr(torch._C, "_len_torch_function_stack", None)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", None)
_func_transforms = getattr(torch._C, "_are_functorch_transforms_active", None)


def _eager_direct(x):
    """Whether an eager call may run the op's body directly: the custom op's
    dispatch (autograd wrapper, redispatch, Python modes) costs more host time
    than the body (measured: 45.6 against 12.7 µs a call on a CPU host), and
    does nothing for a plain tensor on the CPU or CUDA that needs no gradient,
    outside torch.compile, torch.jit tracing, torch.func transforms and
    Python modes. Every other call takes the op, so autograd, torch.compile,
    torch.jit.trace, vmap, FakeTensor/meta tensors, tensor subclasses and
    modes behave as before."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if _function_modes is None or _dispatch_modes is None or _func_transforms is None:
        return False
    return (
        type(x) is torch.Tensor
        and x.device.type in ("cuda", "cpu")
        and not (x.requires_grad and torch.is_grad_enabled())
        and _function_modes() == 0
        and _dispatch_modes() == 0
        and not _func_transforms()
    )


# ----------------------------------------------------------------------------
# The front end (traced by torch.compile: plain torch ops and Python only).
# ----------------------------------------------------------------------------


def _index_name(index_dtype):
    if index_dtype is None:
        return "int64"
    if isinstance(index_dtype, torch.dtype):
        if index_dtype == torch.int64:
            return "int64"
        if index_dtype == torch.int32:
            return "int32"
        raise index_dtype_error(index_dtype)
    name = getattr(index_dtype, "__name__", index_dtype)  # numpy scalar types
    if isinstance(name, str) and name in ("int32", "int64"):
        return name
    name = str(index_dtype)  # numpy dtype objects
    if name in ("int32", "int64"):
        return name
    raise index_dtype_error(index_dtype)


def _skip_value_checks(device_type):
    """Reading per-row values on the host needs a device sync: skip it while
    compiling or capturing a CUDA graph (and for meta tensors, which hold none).
    Inside torch.func transforms (vmap) too: vmap cannot turn a batched
    tensor into a Python bool (the CPU path still checks every entry in C++)."""
    if torch.compiler.is_compiling():
        return True
    if _func_transforms is not None and _func_transforms():
        return True
    if device_type == "meta":
        return True
    return device_type == "cuda" and torch.cuda.is_current_stream_capturing()


def _same_shape(a, b):
    """Element-wise shape equality (traces cleanly with symbolic sizes)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x != y:
            return False
    return True


def _per_row(value, name, lead, rows):
    """A per-row argument as an integer tensor of shape (rows,) (not yet converted)."""
    if value is None:
        return None
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if t.dtype not in _INT_DTYPES:
        raise per_row_dtype_error(name, t.dtype)
    shape = tuple(t.shape)
    if not _same_shape(shape, lead) and not _same_shape(shape, (rows,)):
        raise per_row_shape_error(name, shape, lead, rows)
    if t.dtype != torch.int32 and t.dtype != torch.int64:
        t = t.to(torch.int64)  # so that comparisons with any bound cannot overflow
    return t.reshape(rows)


def _check_ranges(checks):
    """checks: (tensor, name, bound_name, bound). One reduction and one host sync
    per device; the slow path only runs to name the first bad entry."""
    flags = {}
    for t, _, _, bound in checks:
        bad = ((t < 0) | (t > bound)).any()
        key = str(t.device)
        flags[key] = bad if key not in flags else (flags[key] | bad)
    if not any(bool(flag) for flag in flags.values()):
        return
    for t, name, bound_name, bound in checks:
        bad = (t < 0) | (t > bound)
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise per_row_range_error(name, row, int(t[row]), bound_name, bound)


def _to_int32(t, bound, device):
    if t is None:
        return None
    if t.dtype != torch.int32:
        # Entries int32 cannot hold are clamped first, so they stay out of range
        # (no wrap-around); the others keep their value, which an error where
        # the values are checked later (the CPU path, in C++) then names.
        t = t.to(torch.int64)
        wide = (t < -(2**31)) | (t > 2**31 - 1)
        t = torch.where(wide, t.clamp(min=-1, max=bound + 1), t).to(torch.int32)
    if t.device != device:
        t = t.to(device)
    return t.contiguous()


def _supported_dtype(dtype):
    # Comparisons rather than a dict lookup: simplest for torch.compile to trace.
    return dtype == torch.float32 or dtype == torch.float16 or dtype == torch.bfloat16


def _prepare(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm):
    if not _supported_dtype(x.dtype):
        raise TypeError(
            f"fasttopk.topk: unsupported dtype {x.dtype}; supported dtypes are torch.float32, "
            "torch.float16 and torch.bfloat16"
        )
    device_type = x.device.type
    if device_type not in _DEVICE_TYPES:
        raise ValueError(
            f"fasttopk.topk: unsupported device {x.device} (fasttopk runs on CPU and CUDA tensors)"
        )
    if device_type == "cuda" and not CUDA_COMPILED:
        raise RuntimeError(NO_CUDA_MESSAGE)
    index_name = _index_name(index_dtype)
    algorithm = check_algorithm(algorithm)
    largest = check_bool(largest, "largest")
    sorted = check_bool(sorted, "sorted")
    if not isinstance(k, torch.SymInt):
        k = check_int(k, "k")
    ndim = x.dim()
    d = normalize_dim(dim, ndim)

    if ndim == 0:
        # torch.topk's rule for a 0-d input: k in {0, 1}, a 0-d result holding the
        # element and index 0. Computed as one row of one element with k = 1.
        check_k(k, 1, d)
        x2, lead, cols, kk = x.reshape(1, 1), (), 1, 1
    else:
        cols = x.shape[d]
        kk = check_k(k, cols, d)
        xt = x if d == ndim - 1 else x.movedim(d, -1)
        lead = tuple(xt.shape[:-1])
        rows = 1
        for size in lead:
            rows = rows * size
        # A view where possible, else a contiguous copy; a 2-d xt is x2 already.
        x2 = xt if ndim == 2 else xt.reshape(rows, cols)
        if not _layout_ok(x2):
            x2 = x2.contiguous()
    rows = x2.shape[0]

    k_rows = _per_row(k_per_row, "k_per_row", lead, rows)
    len_rows = _per_row(lengths, "lengths", lead, rows)
    if (k_rows is not None or len_rows is not None) and not _skip_value_checks(device_type):
        checks = []
        if k_rows is not None:
            checks.append((k_rows, "k_per_row", "k", kk))
        if len_rows is not None:
            checks.append((len_rows, "lengths", f"size of dim {d}", cols))
        if checks:
            _check_ranges(checks)
    k_rows = _to_int32(k_rows, kk, x.device)
    len_rows = _to_int32(len_rows, cols, x.device)
    return x2, d, ndim, lead, kk, k_rows, len_rows, largest, sorted, index_name, algorithm


def _output_shape(x, d, ndim, kk):
    if ndim == 0:
        return ()
    shape = list(x.shape)
    shape[d] = kk
    return tuple(shape)


def _check_out_tensors(out, shape, values_dtype, index_dtype, device):
    """Checks ``out`` against the result, then resizes an output without
    elements to the result's shape as torch's out= does (torch resizes others
    too, with a warning it calls deprecated; those stay an error here). Nothing
    is resized unless both outputs pass."""
    out_values, out_indices = check_out(out)
    pairs = ((out_values, values_dtype, "values"), (out_indices, index_dtype, "indices"))
    for t, dtype, what in pairs:
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"fasttopk.topk: out {what} must be a torch.Tensor for a tensor input, "
                f"got {type(t).__name__}"
            )
        if t.numel() != 0 and not _same_shape(tuple(t.shape), shape):
            raise ValueError(
                f"fasttopk.topk: out {what} has shape {tuple(t.shape)}, expected {tuple(shape)}"
            )
        if t.dtype != dtype:
            raise TypeError(f"fasttopk.topk: out {what} has dtype {t.dtype}, expected {dtype}")
        if t.device != device:
            raise ValueError(f"fasttopk.topk: out {what} is on {t.device}, expected {device}")
    for t, _, _ in pairs:
        if t.numel() == 0 and tuple(t.shape) != tuple(shape):
            t.resize_(shape)
    return out_values, out_indices


def topk(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm, out):
    (x2, d, ndim, lead, kk, k_rows, len_rows, largest, sorted, index_name, algorithm) = _prepare(
        x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm
    )
    int32_indices = index_name == "int32"
    if out is not None:
        out = _check_out_tensors(
            out,
            _output_shape(x, d, ndim, kk),
            x.dtype,
            torch.int32 if int32_indices else torch.int64,
            x.device,
        )
    op = _topk_direct if _eager_direct(x2) else _topk
    values, indices = op(x2, kk, largest, sorted, k_rows, len_rows, int32_indices, algorithm)
    if ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    else:
        if ndim != 2:  # 2-d: the op's [rows, kk] outputs have the shape already
            shape = tuple(lead) + (kk,)
            values, indices = values.reshape(shape), indices.reshape(shape)
        if d != ndim - 1:
            values, indices = values.movedim(-1, d), indices.movedim(-1, d)
    if out is not None:
        out[0].copy_(values)
        out[1].copy_(indices)
        return TopKResult(out[0], out[1])
    return TopKResult(values, indices)


def chosen_algorithm(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm):
    if x.device.type != "cuda":
        # CPU (and meta) tensors: validate exactly as topk() does; there is one CPU path.
        topk(x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm, None)
        return "host"
    (x2, _, _, _, kk, k_rows, len_rows, largest, sorted, index_name, algorithm) = _prepare(
        x, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm
    )
    if not _layout_ok(x2):
        x2 = x2.contiguous()
    rows = x2.shape[0]
    values = torch.empty((rows, kk), dtype=x2.dtype, device=x2.device)
    indices = torch.empty(
        (rows, kk), dtype=torch.int32 if index_name == "int32" else torch.int64, device=x2.device
    )
    with torch.cuda.device(x2.device):
        params = _params(x2, kk, largest, sorted, k_rows, len_rows, algorithm, values, indices)
        return _C.chosen_algorithm(params)
