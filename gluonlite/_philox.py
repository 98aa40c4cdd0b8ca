"""Philox4x32-10, the counter-based generator behind dropout, in vectorized NumPy.

Philox (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC
2011) maps a 128-bit counter and a 64-bit key to four 32-bit words through ten rounds of
multiply-and-xor. It has no state, so any element's random word can be computed anywhere,
in any order: ``kernels/dropout.cu`` computes the same words on a GPU, and this module is
the NumPy twin used for cpu devices. The two must agree bit for bit (tests/test_dropout.py
and tests/test_kernels_host_dropout.py check that, and check both against the known-answer
vectors of the Random123 distribution).

The stream layout shared with the kernel: word ``i`` of key ``k`` is word ``i % 4`` of
Philox4x32-10 with counter ``(lo32(i // 4), hi32(i // 4), 0, 0)`` and key
``(lo32(k), hi32(k))``.

>>> from gluonlite import _philox
>>> [hex(w) for w in _philox.philox4x32([0, 0, 0, 0], [0, 0])]
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy
import numpy.typing as npt

if TYPE_CHECKING:
    from typing import TypeAlias

# The rounds' words: uint64 arrays holding 32-bit values.
_U64: TypeAlias = npt.NDArray[numpy.uint64]

__all__ = ["philox4x32", "stream"]

# Round multipliers and key-schedule (Weyl) increments, from the paper.
_M0, _M1 = numpy.uint64(0xD2511F53), numpy.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LOW = numpy.uint64(0xFFFFFFFF)
_32 = numpy.uint64(32)
_CHUNK_GROUPS = 1 << 14  # counters per chunk in stream()


def _rounds(
    c0: npt.ArrayLike,
    c1: npt.ArrayLike,
    c2: npt.ArrayLike,
    c3: npt.ArrayLike,
    k0: int,
    k1: int,
    rounds: int,
) -> tuple[_U64, _U64, _U64, _U64]:
    """The Philox rounds on counter words ``c0..c3`` (arrays or scalars of one broadcast
    shape, 32-bit values), returned as uint64 arrays holding 32-bit values.

    The words are widened to uint64 because the product of two 32-bit values fits it
    exactly; the rounds work in place on four word and two product buffers, since this runs
    over every element of an activation on cpu devices.
    """
    shape = numpy.broadcast_shapes(*(numpy.shape(c) for c in (c0, c1, c2, c3)))
    c0, c1, c2, c3 = (
        numpy.array(numpy.broadcast_to(c, shape), dtype=numpy.uint64) for c in (c0, c1, c2, c3)
    )
    p0, p1 = numpy.empty(shape, numpy.uint64), numpy.empty(shape, numpy.uint64)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        numpy.multiply(c0, _M0, out=p0)
        numpy.multiply(c2, _M1, out=p1)
        # (c0, c1, c2, c3) <- (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0)), in an
        # order that reads c1 and c3 before they are overwritten.
        numpy.right_shift(p1, _32, out=c0)
        c0 ^= c1
        c0 ^= numpy.uint64(k0)
        numpy.right_shift(p0, _32, out=c2)
        c2 ^= c3
        c2 ^= numpy.uint64(k1)
        numpy.bitwise_and(p1, _LOW, out=c1)
        numpy.bitwise_and(p0, _LOW, out=c3)
    return c0, c1, c2, c3


def philox4x32(
    counter: npt.ArrayLike, key: npt.ArrayLike, rounds: int = 10
) -> npt.NDArray[numpy.uint32]:
    """Philox4x32-``rounds`` of ``counter`` (``[..., 4]`` 32-bit words) under ``key`` (two
    32-bit words): the ``[..., 4]`` uint32 output words."""
    counter = numpy.asarray(counter, dtype=numpy.uint64)
    key = numpy.asarray(key, dtype=numpy.uint64)
    if counter.shape[-1:] != (4,) or key.shape != (2,):
        raise ValueError(
            f"philox4x32: expected counter [..., 4] and key [2], got shapes "
            f"{counter.shape} and {key.shape}"
        )
    if (counter > _LOW).any() or (key > _LOW).any():
        raise ValueError("philox4x32: counter and key words must be 32-bit")
    c = counter
    words = _rounds(c[..., 0], c[..., 1], c[..., 2], c[..., 3], int(key[0]), int(key[1]), rounds)
    return numpy.stack(words, axis=-1).astype(numpy.uint32)


def stream(key: int, n: int) -> npt.NDArray[numpy.uint32]:
    """Words ``0 .. n-1`` (uint32) of the stream of the 64-bit ``key`` (layout above)."""
    if not 0 <= key < 2**64:
        raise ValueError(f"stream: key must be a 64-bit unsigned integer, got {key}")
    groups = -(-n // 4)
    out = numpy.empty((groups, 4), numpy.uint32)
    # In chunks whose six uint64 work buffers (about 0.8 MB) stay in the CPU's cache: the
    # ten rounds make some eighty passes over them.
    for start in range(0, groups, _CHUNK_GROUPS):
        block = numpy.arange(start, min(start + _CHUNK_GROUPS, groups), dtype=numpy.uint64)
        words = _rounds(block & _LOW, block >> _32, 0, 0, key & 0xFFFFFFFF, key >> 32, 10)
        for j, w in enumerate(words):
            out[start : start + block.shape[0], j] = w
    return out.reshape(-1)[:n]
