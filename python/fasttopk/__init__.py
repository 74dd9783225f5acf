"""fasttopk: exact, sorted, deterministic top-k selection for GPUs and CPUs.

    >>> import numpy as np, fasttopk
    >>> values, indices = fasttopk.topk(np.array([1.0, 3.0, 2.0], np.float32), 2)
    >>> values.tolist(), indices.tolist()
    ([3.0, 2.0], [1, 2])

``fasttopk.topk`` takes numpy arrays (CPU path) and torch tensors (CUDA
tensors on the GPU, CPU tensors on the CPU path) and follows torch.topk's
shapes and order; see its docstring for the full contract. torch is optional:
it is imported only when a torch tensor is passed (or at import time when torch
is already imported). With torch, the ``fasttopk::topk`` custom op is
registered for torch.compile and CUDA graphs.

Lower-level access to the C++ API (raw addresses, explicit workspaces and
streams) is in ``fasttopk._C``.
"""

from ._api import algorithms, chosen_algorithm, cuda_compiled, topk, version
from ._common import TopKResult

__version__ = version()

__all__ = [
    "TopKResult",
    "algorithms",
    "chosen_algorithm",
    "cuda_compiled",
    "topk",
    "version",
    "__version__",
]
