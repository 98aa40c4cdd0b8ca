"""A stand-in for the few CuPy APIs gluonlite._kernels calls, backed by NumPy and the
CPU-built kernels, so that the GPU-only Python code (CuPy runtime, module loading, measured
dispatch, public entry points) runs in tests without a GPU.

It encodes this project's reading of CuPy's API (``RawModule(code=, options=,
name_expressions=)``, ``get_function``, ``ndarray.data.ptr``, ``cuda.Event``, ...), so it
catches mistakes in our code, not misreadings of CuPy: those only a GPU run finds.
"""
import ctypes
import hashlib
import time
import types

import numpy

from . import harness


class Array(numpy.ndarray):
    """A NumPy array that also answers CuPy's ``.data.ptr`` and ``.device`` (device 0)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return _Device(0)


def as_array(array):
    """``array`` as an ``Array`` (a view, no copy)."""
    return numpy.asarray(array).view(Array)


class CompileException(Exception):
    pass


class _Event:
    def record(self, stream=None):
        self.at = time.perf_counter()

    def synchronize(self):
        pass


class _Device:
    def __init__(self, device=0):
        self.id = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _host_buffer(address: int, bits_type, transposed: bool, rows: int, cols: int, ld: int):
    """The elements (raw bits) a column-major rows x cols operand spans from ``address``."""
    stored_rows, stored_cols = (cols, rows) if transposed else (rows, cols)
    count = max(0, ld * (stored_cols - 1) + stored_rows)
    c_type = {2: ctypes.c_uint16, 4: ctypes.c_uint32}[numpy.dtype(bits_type).itemsize]
    return numpy.ctypeslib.as_array((c_type * count).from_address(address))


class _Cublas:
    """cupy.cuda.cublas's gemmEx and pointer-mode calls, emulated for the float32, float16
    and bfloat16 storage that gluonlite uses."""

    def __init__(self):
        self.mode = 1  # not HOST: the caller must set it, as CuPy may leave it so
        self.calls = []  # data type of each gemmEx call, in order

    def getPointerMode(self, handle):
        return self.mode

    def setPointerMode(self, handle, mode):
        self.mode = mode

    def gemmEx(self, handle, transa, transb, m, n, k, alpha, a, atype, lda, b, btype, ldb,
               beta, c, ctype, ldc, compute_type, algo):
        from .reference import GEMM_DATA_TYPES, gemm_ex
        assert self.mode == 0, "alpha and beta are host pointers: CUBLAS_POINTER_MODE_HOST"
        assert atype == btype == ctype and atype in GEMM_DATA_TYPES, (atype, btype, ctype)
        assert (compute_type, algo) == (68, -1)  # CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT
        assert transa in (0, 1) and transb in (0, 1)
        assert ctypes.c_float.from_address(alpha).value == 1.0
        self.calls.append(atype)
        bits_type = GEMM_DATA_TYPES[atype][1]
        gemm_ex(atype, bool(transa), bool(transb), m, n, k,
                _host_buffer(a, bits_type, transa, m, k, lda), lda,
                _host_buffer(b, bits_type, transb, k, n, ldb), ldb,
                _host_buffer(c, bits_type, False, m, n, ldc), ldc,
                ctypes.c_float.from_address(beta).value)


def module(order: str = "forward", sanitize=None) -> types.ModuleType:
    """A ``cupy`` module whose kernels run in the host harness under ``order``; its
    ``launches`` list records the name expression of every kernel launched, in order."""
    fake = types.ModuleType("cupy")
    fake.launches = []
    fake.__getattr__ = lambda name: getattr(numpy, name)  # everything else is NumPy's
    fake.empty = lambda shape, dtype=float: as_array(numpy.empty(shape, dtype))
    fake.zeros = lambda shape, dtype=float: as_array(numpy.zeros(shape, dtype))
    # As in CuPy, a host array is copied (to the "device"); a device array is not.
    fake.asarray = lambda a, dtype=None: as_array(
        numpy.asarray(a, dtype) if isinstance(a, Array) else numpy.array(a, dtype))
    fake.ascontiguousarray = lambda a, dtype=None: as_array(numpy.ascontiguousarray(a, dtype))

    class RawModule:
        def __init__(self, code, options=(), name_expressions=()):
            self.code, self.options, self.expressions = code, options, tuple(name_expressions)
            self.built = None

        def get_function(self, expression):
            if self.built is None:
                path = harness.cache_dir() / (
                    hashlib.sha256(self.code.encode()).hexdigest()[:16] + ".cu")
                path.write_text(self.code)
                try:
                    self.built = harness.HostModule(path, self.expressions, sanitize)
                except RuntimeError as e:
                    raise CompileException(str(e)) from e
            kernel = self.built.get_function(expression)

            def launch(grid, block, args, shared_mem=0):
                fake.launches.append(expression)
                kernel(grid, block, args, shared_mem, order=order, seed=7)
            return launch

    fake.RawModule = RawModule
    stream = types.SimpleNamespace(synchronize=lambda: None)
    fake.cuda = types.SimpleNamespace(
        Device=_Device, Event=_Event, get_current_stream=lambda: stream,
        get_elapsed_time=lambda start, stop: (stop.at - start.at) * 1e3,
        runtime=types.SimpleNamespace(getDevice=lambda: 0),
        cublas=_Cublas(), get_cublas_handle=lambda: 0,
        compiler=types.SimpleNamespace(CompileException=CompileException))
    return fake
