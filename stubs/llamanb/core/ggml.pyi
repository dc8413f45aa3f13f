"""
ggml tensors: types, (de)quantization, a small CPU compute API; its backends and devices
(ggml-backend.h) and RPC (ggml-rpc.h).
"""

from collections.abc import Sequence
import enum
from typing import Annotated, Any

import numpy
import numpy.typing
from numpy.typing import NDArray


def backends() -> list[str]:
    """
    Names of the ggml backends compiled in (e.g. ['CPU'] or ['CUDA', 'CPU']).
    """

def cpu_features() -> dict[str, str]:
    """
    Features of the CPU backend in use (e.g. {'AVX2': '1', ...}); with runtime dispatch,
    those of the variant that was picked for this CPU.
    """

def devices() -> list[dict[str, str]]:
    """
    The devices ggml can use, as dicts (name, description, type, backend, memory_free, memory_total).
    """

def rpc_serve(endpoint: str, n_threads: int, cache_dir: str | None = None) -> None:
    """
    Serve this machine's GPUs (or its CPU when it has none) to llamanb/llama.cpp clients
    over ggml RPC on endpoint 'host:port'. Blocks for good (GIL released) and raises
    RpcConnectionError when it cannot listen. The protocol is unauthenticated and
    unencrypted: serve on loopback or a trusted network only.
    """

def rpc_devices(endpoint: str) -> list[str]:
    """
    Connect to the RPC server at 'host:port' and list its devices' names
    (raises RpcConnectionError when nothing answers there).
    """

class GGMLType(enum.IntEnum):
    """ggml tensor element types."""

    F32 = 0

    F16 = 1

    Q4_0 = 2

    Q4_1 = 3

    Q5_0 = 6

    Q5_1 = 7

    Q8_0 = 8

    Q8_1 = 9

    Q2_K = 10

    Q3_K = 11

    Q4_K = 12

    Q5_K = 13

    Q6_K = 14

    Q8_K = 15

    IQ2_XXS = 16

    IQ2_XS = 17

    IQ3_XXS = 18

    IQ1_S = 19

    IQ4_NL = 20

    IQ3_S = 21

    IQ2_S = 22

    IQ4_XS = 23

    I8 = 24

    I16 = 25

    I32 = 26

    I64 = 27

    F64 = 28

    IQ1_M = 29

    BF16 = 30

    TQ1_0 = 34

    TQ2_0 = 35

    MXFP4 = 39

    NVFP4 = 40

    Q1_0 = 41

    Q2_0 = 42

def type_name(type: int) -> str:
    """ggml's name of a type."""

def block_size(type: int) -> int:
    """Elements per block."""

def type_size(type: int) -> int:
    """Bytes per block."""

def row_size(type: int, n: int) -> int:
    """Bytes of a row of n elements."""

def is_quantized(type: int) -> bool:
    """True for block-quantized types."""

def quantize(x: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], type: int, imatrix: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None = None) -> Annotated[NDArray[numpy.uint8], dict(shape=(None, None))]:
    """
    Quantize float32 rows (1-D or 2-D, row length a multiple of the block size) to
    `type`; returns uint8 rows of row_size(type, n) bytes. GIL released.
    """

def dequantize(data: Annotated[NDArray[numpy.uint8], dict(order='C', device='cpu', writable=False)], type: int, n_per_row: int) -> Annotated[NDArray[numpy.float32], dict(shape=(None, None))]:
    """
    float32 rows of n_per_row elements from quantized bytes of `type`. GIL released.
    """

class ModelTensor:
    """A weight tensor of a loaded Model (keeps the model alive)."""

    @property
    def name(self) -> str:
        """Tensor name."""

    @property
    def shape(self) -> list[int]:
        """Shape in numpy order (ggml ne reversed)."""

    @property
    def ggml_type(self) -> GGMLType:
        """Element type."""

    @property
    def nbytes(self) -> int:
        """Size in bytes."""

    @property
    def is_host(self) -> bool:
        """True if the data is in host RAM (also when repacked there)."""

    @property
    def is_repacked(self) -> bool:
        """
        True if the bytes in memory are in a kernel layout (AMX, CPU_REPACK), not the file's;
        numpy() then reads the file's bytes from the GGUF file.
        """

    @property
    def buffer(self) -> str:
        """
        Name of the backend buffer holding the data (e.g. 'CPU', 'CUDA0', 'RPC0[host:port]').
        """

    @property
    def buffer_type(self) -> str:
        """Name of its buffer type: 'CPU', 'AMX', 'CPU_REPACK', 'CUDA0', ..."""

    def numpy(self, dequantize: bool = False) -> numpy.typing.NDArray[Any]:
        """
        F32/F16 weights in host memory: a read-only zero-copy view (keeps the model's weights
        alive); elsewhere (a device, a repacked buffer) a read-only copy. Other types raise
        TypeError unless dequantize=True: then a float32 copy, from the file's bytes.
        """

    def __repr__(self) -> str: ...

class Tensor:
    """A tensor in a ggml Context (keeps the context alive)."""

    @property
    def shape(self) -> list[int]:
        """Shape in numpy order."""

    @property
    def ggml_type(self) -> GGMLType:
        """Element type."""

    @property
    def nbytes(self) -> int:
        """Size in bytes."""

    def set(self, x: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]) -> None:
        """
        Write float32 data (same number of elements), quantizing to the tensor's type.
        """

    def numpy(self) -> numpy.typing.NDArray[numpy.float32]:
        """The values as a float32 copy (dequantized if needed)."""

class Context:
    """A ggml context: a memory pool for tensors and graphs (CPU)."""

    def __init__(self, mem_size: int = 67108864) -> None: ...

    @property
    def used_mem(self) -> int:
        """Bytes of the pool in use."""

    def new_tensor(self, type: int, shape: Sequence[int]) -> Tensor:
        """A new tensor of `type` with a numpy-order shape."""

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        """a + b (b broadcast)."""

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        """a - b (b broadcast)."""

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        """a * b (b broadcast)."""

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        """a / b (b broadcast)."""

    def relu(self, a: Tensor) -> Tensor:
        """max(a, 0)."""

    def gelu(self, a: Tensor) -> Tensor:
        """GELU(a)."""

    def silu(self, a: Tensor) -> Tensor:
        """SiLU(a)."""

    def sqr(self, a: Tensor) -> Tensor:
        """a * a."""

    def sqrt(self, a: Tensor) -> Tensor:
        """sqrt(a)."""

    def sum(self, a: Tensor) -> Tensor:
        """Sum of all elements (shape [1])."""

    def mean(self, a: Tensor) -> Tensor:
        """Mean over the last (numpy) axis, kept as size 1."""

    def soft_max(self, a: Tensor) -> Tensor:
        """Softmax over the last axis."""

    def cont(self, a: Tensor) -> Tensor:
        """A contiguous copy."""

    def transpose(self, a: Tensor) -> Tensor:
        """Swap the last two axes (a view; cont() it before numpy())."""

    def scale(self, a: Tensor, k: float) -> Tensor:
        """a * k."""

    def rms_norm(self, a: Tensor, eps: float = 9.999999974752427e-07) -> Tensor:
        """RMS-normalize over the last axis."""

    def norm(self, a: Tensor, eps: float = 9.999999747378752e-06) -> Tensor:
        """Layer-normalize over the last axis (no affine)."""

    def mul_mat(self, a: Tensor, b: Tensor) -> Tensor:
        """
        b @ a.T in numpy terms: a (n, k) and b (m, k) give (m, n). a may be quantized.
        """

    def compute(self, out: Tensor, n_threads: int = 1) -> None:
        """
        Build the graph that produces `out` and compute it on the CPU. GIL released.
        """
