"""Coupon codes: unique, unguessable, and easy to read out and type.

A code is an optional campaign prefix followed by ``CODE_LENGTH`` characters drawn by the
``secrets`` module (the operating system's CSPRNG) from an alphabet without look-alikes (no 0/O,
1/I/L): 31 symbols, so 12 of them carry about 59 bits: guessing one of a million live codes takes
about 10^12 tries. Uniqueness is the database's job (a unique index on the code); the apply
service regenerates the astronomically rare code that collides.

Generation is vectorized: random bytes are mapped to the alphabet by rejection sampling (bytes
at or above 248 = 8 x 31 are dropped, so every symbol is equally likely), a million codes in
well under a second.
"""

from __future__ import annotations

import secrets

import numpy as np

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12
_SYMBOLS = np.array(list(ALPHABET), dtype="<U1")
_LIMIT = 256 - 256 % len(ALPHABET)  # 248: bytes below it map uniformly onto the alphabet


def _random_symbols(count: int) -> np.ndarray:
    """``count`` indices into ALPHABET, uniform and independent."""
    out = np.empty(0, dtype=np.uint8)
    while out.size < count:
        # 248/256 of the bytes are kept; ask for a little more than needed.
        need = count - out.size
        raw = np.frombuffer(secrets.token_bytes(need + need // 16 + 64), dtype=np.uint8)
        out = np.concatenate([out, raw[raw < _LIMIT]])
    return out[:count] % len(ALPHABET)


def generate_codes(count: int, *, prefix: str = "", length: int = CODE_LENGTH) -> np.ndarray:
    """``count`` fresh codes (a numpy array of str), distinct among themselves."""
    if count <= 0:
        return np.empty(0, dtype=f"<U{len(prefix) + length}")
    while True:
        symbols = _SYMBOLS[_random_symbols(count * length)].reshape(count, length)
        codes = symbols.view(f"<U{length}").reshape(count)
        if np.unique(codes).size == count:  # a repeat within the batch: draw the batch again
            break
    if prefix:
        codes = np.char.add(prefix, codes)
    return codes
