"""Matérn 5/2 on mixed continuous / categorical columns, with the derivatives the fit and the optimiser need."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

SQRT5 = math.sqrt(5.0)


def column_distances(a: FloatArray, b: FloatArray, is_cat: BoolArray) -> FloatArray:
    """D: (len(a), len(b), d); squared differences, or 0/1 mismatches for categorical columns."""
    diff = a[:, None, :] - b[None, :, :]
    dist = diff * diff
    if is_cat.any():
        dist[:, :, is_cat] = (diff[:, :, is_cat] != 0.0).astype(float)
    return dist


def scaled_sq_dist(a: FloatArray, b: FloatArray, inv_ls2: FloatArray, is_cat: BoolArray) -> FloatArray:
    """r2 without materialising D: the expansion |a|^2 + |b|^2 - 2ab for continuous columns, direct for categorical."""
    cont = ~is_cat
    r2 = np.zeros((len(a), len(b)))
    if cont.any():
        w = np.sqrt(inv_ls2[cont])
        ac, bc = a[:, cont] * w, b[:, cont] * w
        r2 += (ac * ac).sum(1)[:, None] + (bc * bc).sum(1)[None, :] - 2.0 * ac @ bc.T
        np.maximum(r2, 0.0, out=r2)
    for j in np.flatnonzero(is_cat):
        r2 += inv_ls2[j] * (a[:, j, None] != b[None, :, j])
    return r2


def matern52(r2: FloatArray) -> FloatArray:
    """k(r) / amplitude."""
    r = np.sqrt(r2)
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * np.exp(-SQRT5 * r)


def matern52_and_slope(r2: FloatArray) -> tuple[FloatArray, FloatArray]:
    """k / amplitude and d(k / amplitude) / d(r2): the slope is finite at r = 0, which keeps gradients defined."""
    r = np.sqrt(r2)
    e = np.exp(-SQRT5 * r)
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * (1.0 + SQRT5 * r) * e
