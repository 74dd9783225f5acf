"""fasttopk's public functions: one entry point for numpy arrays and torch tensors."""

import importlib.util
import sys

import numpy as np

from . import _C, _numpy
from ._common import ALGORITHMS, CUDA_COMPILED

_TORCH_INSTALLED = importlib.util.find_spec("torch") is not None
_torch_front = None  # fasttopk._torch once loaded


def _load_torch():
    global _torch_front
    from . import _torch

    _torch_front = _torch
    return _torch


def _front_end(x):
    """The module that handles `x` (the caller's ``input``): fasttopk._torch for
    torch tensors (imported on first use), fasttopk._numpy for numpy arrays.
    Straight-line code that torch.compile can trace."""
    front = _torch_front
    if front is not None and isinstance(x, front.torch.Tensor):
        return front
    if isinstance(x, (np.ndarray, np.generic)):
        return _numpy
    if front is None and _TORCH_INSTALLED:
        front = _load_torch()
        if isinstance(x, front.torch.Tensor):
            return front
    raise TypeError(
        f"fasttopk.topk: input must be a numpy.ndarray or a torch.Tensor, got {type(x).__name__}"
    )


def topk(
    input,
    k,
    dim=-1,
    largest=True,
    sorted=True,
    *,
    k_per_row=None,
    lengths=None,
    index_dtype=None,
    algorithm="auto",
    out=None,
):
    """The k largest (or smallest) elements of ``input`` along ``dim``: exact and deterministic.

    A drop-in for ``torch.topk`` with the same signature (``input, k, dim=-1,
    largest=True, sorted=True, *, out=None``, each also by keyword) and the
    same shapes: the result is a named tuple ``(values, indices)`` whose shape
    is ``input.shape`` with ``dim`` replaced by ``k`` (a 0-d input, k in {0,
    1}, gives 0-d outputs holding the element and index 0, as torch does).

    Where it runs: torch CUDA tensors on the GPU, asynchronously on the current
    stream of their device (``torch.cuda.current_stream()``), with a workspace
    from torch's caching allocator; torch CPU tensors and numpy arrays on the
    CPU path (numpy in, numpy out). The GPU and CPU paths give bitwise-identical
    results. Calls are capturable in CUDA graphs and traceable by
    ``torch.compile(fullgraph=True)`` (the ``fasttopk::topk`` custom op), and
    the gradient of ``values`` flows back to ``input``.

    Order (the total order of torch.topk): every NaN ranks above +inf and NaNs
    are equal to each other, +0.0 ranks above -0.0, and equal keys go to the
    lower index (so selection at the k-th boundary keeps the lowest indices).
    ``largest=False`` reverses the order of non-NaN values and ranks NaN last.
    Values are copied bit for bit from the input.

    Args:
        input: a numpy array or scalar (float32 or float16) or a torch tensor (float32,
            float16 or bfloat16) on the CPU or a CUDA device, of any shape and
            strides. Rows with a unit stride along ``dim`` and an even row
            spacing are read in place; other layouts are copied first.
        k: number of elements to select, ``0 <= k <= input.shape[dim]``.
        dim: the dimension to select along (negative values count from the end).
        largest: select the largest (True) or the smallest (False) elements; a
            bool (numpy's bool too), as torch.topk requires.
        sorted: a bool. True returns the k elements in rank order; False
            returns the same set in an unspecified but deterministic order.
        k_per_row: optional per-row k. "Rows" are the positions of all the
            dimensions other than ``dim``: a tensor/array of integers of shape
            ``input.shape`` without ``dim``, or 1-d with one entry per row (in
            row-major order), each in ``[0, k]``.
        lengths: optional per-row lengths, same shape rules, each in
            ``[0, input.shape[dim]]``: row i considers only its first ``lengths[i]``
            elements along ``dim``. Row i selects ``min(k_per_row[i],
            lengths[i])`` elements; the remaining output slots hold the sentinel
            value -inf (largest) or +inf (smallest) with index -1. For CUDA
            inputs both must ideally be int32 tensors on input's device; other
            integer tensors, devices, arrays or lists are converted.
        index_dtype: dtype of the indices: int64 (default, as torch) or int32
            (``torch.int32``, ``numpy.int32`` or ``"int32"``).
        algorithm: ``"auto"`` or a GPU algorithm from :func:`algorithms` to
            force one (CUDA tensors only; CPU inputs take only ``"auto"``).
        out: optional ``(values, indices)`` of exactly the result's shape, dtype
            and device (numpy arrays for numpy inputs); the result is copied
            into them and they are returned. As with ``torch.topk``, a torch
            tensor without elements is first resized to the result's shape.

    Returns:
        ``TopKResult(values, indices)``.

    Raises:
        TypeError: ``input`` is not a numpy array / torch tensor; unsupported dtype
            (e.g. float64 or integer inputs); non-integer ``k``/``dim``/per-row
            values; a bad ``index_dtype``.
        ValueError: ``k`` out of range (an exception that is also the
            RuntimeError torch.topk raises there), ``dim`` out of range (also
            an IndexError, as in torch), per-row arguments
            of the wrong shape or (checked eagerly) with entries out of range, an
            unknown algorithm, a forced algorithm that cannot take the problem
            or is forced on a CPU input, a mismatched ``out``.
        RuntimeError: CUDA tensors with a build without CUDA, or a CUDA error.

    Per-row values on CUDA: checking them needs one small reduction and a host
    sync, done in eager mode only. While a CUDA graph is being captured, under
    torch.compile or inside torch.func transforms (vmap) the check is
    skipped, and the GPU path writes a row whose entry is out of range
    entirely as sentinels (-inf/+inf, index -1); the CPU path always raises.

    ``torch.func.vmap`` batches calls into one (its batching rule stacks the
    batch's rows), and autograd gives the gradient of the values.
    """
    return _front_end(input).topk(
        input, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm, out
    )


def chosen_algorithm(
    input,
    k,
    dim=-1,
    largest=True,
    sorted=True,
    *,
    k_per_row=None,
    lengths=None,
    index_dtype=None,
    algorithm="auto",
):
    """The name of the algorithm :func:`topk` would run for these arguments.

    For CUDA tensors: the GPU algorithm the dispatcher picks on the tensor's
    device (``"auto"`` resolved; ``"auto"`` itself for an empty problem). For
    CPU tensors and numpy arrays: ``"host"`` (the arguments are validated by
    running the CPU path once). Raises as :func:`topk` does.
    """
    return _front_end(input).chosen_algorithm(
        input, k, dim, largest, sorted, k_per_row, lengths, index_dtype, algorithm
    )


def algorithms():
    """The GPU algorithms that ``algorithm=`` can force, in the library's order
    (``"auto"``, the default, is accepted too)."""
    return ALGORITHMS


def cuda_compiled():
    """Whether this build of fasttopk contains the CUDA path."""
    return CUDA_COMPILED


def version():
    """The library version, "MAJOR.MINOR.PATCH"."""
    return _C.version()


# torch already imported: register the ops now rather than on the first call,
# which may come from inside torch.compile.
if "torch" in sys.modules:
    _load_torch()
