"""Pieces shared by the numpy and torch front ends.

Everything here is plain Python on ints and strings (no numpy, no torch), so
that torch.compile can trace it when it is called from the torch front end.
"""

import collections
import operator
import os

from . import _C

#: The GPU algorithms that can be forced, in the library's enum order.
ALGORITHMS = tuple(_C.algorithm_names())
#: Every value the ``algorithm`` argument accepts.
ALGORITHM_CHOICES = ("auto",) + ALGORITHMS
#: Whether the extension was built with the CUDA path.
CUDA_COMPILED = bool(_C.cuda_compiled())


def _host_threads():
    # The CPUs this process may run on (affinity / container limits respected),
    # counted once: asking the C++ side for "all hardware threads" (0) costs a
    # sysconf() per call.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: Threads the CPU path uses (rows are split across them when there is enough work).
HOST_THREADS = _host_threads()

NO_CUDA_MESSAGE = (
    "fasttopk was built without CUDA (FASTTOPK_ENABLE_CUDA=OFF), so it cannot run on CUDA "
    "tensors; rebuild with CUDA or pass CPU tensors / numpy arrays"
)


# A plain namedtuple (not a subclass of one): torch.compile treats exactly
# these as named tuples, so building one inside a compiled graph does not break it.
TopKResult = collections.namedtuple("TopKResult", ["values", "indices"])
TopKResult.__doc__ = """The result of :func:`fasttopk.topk`: ``(values, indices)``.

A named tuple, so it unpacks like the result of ``torch.topk``::

    values, indices = fasttopk.topk(x, k)
"""


def check_int(value, name):
    """Returns ``value`` as an int; TypeError unless it is an integer (bools excluded)."""
    if isinstance(value, bool):
        raise TypeError(f"fasttopk.topk: {name} must be an int, got bool")
    if isinstance(value, int):
        return value
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"fasttopk.topk: {name} must be an int, got {type(value).__name__}"
        ) from None


def check_bool(value, name):
    """Returns ``value`` as a bool; TypeError unless it is a bool (Python's, or
    numpy's for numpy callers). torch.topk is as strict: truthiness would let
    ``sorted="no"`` or ``largest=None`` pass silently as something else."""
    if isinstance(value, bool):
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"):  # numpy stays unimported
        return bool(value)
    raise TypeError(f"fasttopk.topk: {name} must be a bool, got {kind.__name__}")


class DimOutOfRangeError(ValueError, IndexError):
    """``dim`` out of range: a ValueError (fasttopk's documented error) that is
    also the IndexError torch.topk raises, so code written for either catches it."""


class KOutOfRangeError(ValueError, RuntimeError):
    """``k`` out of range: a ValueError that is also the RuntimeError
    torch.topk raises ("selected index k out of range")."""


def normalize_dim(dim, ndim):
    """Wraps a negative ``dim`` like torch does (a 0-d input counts as 1-d)."""
    dim = check_int(dim, "dim")
    span = max(ndim, 1)
    if dim < -span or dim >= span:
        raise DimOutOfRangeError(
            f"fasttopk.topk: dim {dim} is out of range for a {ndim}-d input "
            f"(expected a value in [{-span}, {span - 1}])"
        )
    return dim + span if dim < 0 else dim


def check_k(k, size, dim):
    """Checks ``0 <= k <= size`` (size = the length of the selected dimension)."""
    if k < 0 or k > size:
        raise KOutOfRangeError(
            f"fasttopk.topk: k = {k} is out of range for dimension {dim} of size {size} "
            f"(expected 0 <= k <= {size})"
        )
    return k


def check_algorithm(algorithm):
    """Returns ``algorithm`` if it is a known name; ValueError/TypeError otherwise."""
    if not isinstance(algorithm, str):
        raise TypeError(f"fasttopk.topk: algorithm must be a str, got {type(algorithm).__name__}")
    if algorithm not in ALGORITHM_CHOICES:
        raise ValueError(
            f"fasttopk.topk: unknown algorithm '{algorithm}' "
            f"(known: {', '.join(ALGORITHM_CHOICES)})"
        )
    return algorithm


def index_dtype_error(index_dtype):
    return TypeError(f"fasttopk.topk: index_dtype must be int32 or int64, got {index_dtype!r}")


def per_row_shape_error(name, shape, lead_shape, rows):
    return ValueError(
        f"fasttopk.topk: {name} must have one entry per row: shape {tuple(lead_shape)} "
        f"or ({rows},), got shape {tuple(shape)}"
    )


def per_row_dtype_error(name, dtype):
    return TypeError(f"fasttopk.topk: {name} must hold integers, got dtype {dtype}")


def per_row_range_error(name, row, value, bound_name, bound):
    return ValueError(
        f"fasttopk.topk: {name}[{row}] = {value} is outside [0, {bound_name} = {bound}]"
    )


def check_out(out):
    """``out`` must be a pair (values, indices); returns it as a tuple."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError("fasttopk.topk: out must be a tuple (values, indices)")
    return out[0], out[1]
