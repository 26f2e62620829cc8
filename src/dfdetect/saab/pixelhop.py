"""The channel-wise PixelHop++ tree (DefakeHop's feature extractor) on ``(N, H, W, C)`` arrays.

Hop 1 fits one :class:`~dfdetect.saab.saab.Saab` on the ``k x k x C`` neighbourhoods of the
input (27-D for RGB and k = 3); every later hop fits one Saab per channel that the previous hop
passes on, on that channel's ``k x k`` neighbourhoods (9-D): the channel-wise (c/w) Saab
transform. Convolutions use stride 1 and no padding, and every hop ends with a 2 x 2 max pooling
(32 -> 30 -> 15 -> 13 -> 7 -> 5 -> 3 for 32 x 32 inputs; odd sizes are pooled in "ceil" mode, the
last window taking only the pixels that exist, i.e. never padded with zeros).

Channel selection per hop, with energies in the PixelHop++ sense, on AC energy as the paper and
the authors' code do (a hop-1 AC channel's energy is its share of the AC variance; a child
channel's energy is its share of its Saab's AC variance times the parent's energy). The DC
channels (local means) are never output nor passed on:

- a channel whose energy exceeds ``keep_thr`` is a candidate output of the hop; the
  ``max_channels`` candidates of highest energy (across all c/w Saabs of the hop) are output,
  in decreasing order of energy;
- an output channel whose energy exceeds ``split_thr`` is passed on to the next hop;
- every other channel is discarded (its kernel is not kept).

``fit(X)`` then ``transform(X)`` returns one array per hop, shaped ``(N, H_h, W_h, K_h)``.
The fitted tree is saved as plain arrays (npz) plus a JSON description, never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .saab import CovarianceAccumulator, Saab

FORMAT = "dfdetect-pixelhop/1"


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed zip timestamps and sorted names (byte-identical reruns), atomic."""
    import zipfile  # noqa: PLC0415

    from ..store import atomic_path  # noqa: PLC0415

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[name]), allow_pickle=False)


def neighbourhoods(a: np.ndarray, k: int) -> np.ndarray:
    """``(n, H, W, C) -> (n, H-k+1, W-k+1, k*k*C)`` flattened in (row, column, channel) order."""
    win = sliding_window_view(a, (k, k), axis=(1, 2))           # (n, H', W', C, k, k)
    win = win.transpose(0, 1, 2, 4, 5, 3)                        # (n, H', W', k, k, C)
    n, h, w = win.shape[:3]
    return win.reshape(n, h, w, k * k * a.shape[3])


def max_pool(a: np.ndarray, size: int = 2) -> np.ndarray:
    """``size x size`` max pooling with stride ``size`` over axes 1, 2 ("ceil" mode: a partial
    window at the border takes the max of the pixels it has)."""
    if size <= 1:
        return a
    n, h, w, c = a.shape
    ph, pw = (-h) % size, (-w) % size
    if ph or pw:
        a = np.pad(a, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    h2, w2 = a.shape[1] // size, a.shape[2] // size
    return a.reshape(n, h2, size, w2, size, c).max(axis=(2, 4))


def pooled_size(size: int, kernel: int, pool: int) -> int:
    conv = size - kernel + 1
    return -(-conv // pool) if pool > 1 else conv


@dataclass
class Hop:
    """One fitted hop: its Saab units and which of their channels it outputs."""

    units: list[Saab] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)   # input channel of each unit (-1: all)
    out_unit: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    out_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    energy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    split: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # passed on to next hop
    candidates: int = 0                                 # channels above keep_thr before the cap

    @property
    def n_out(self) -> int:
        return len(self.out_unit)


class PixelHop:
    """Channel-wise PixelHop++ (see module docstring).

    Parameters: ``num_hops`` (3), ``kernel_size`` (3, or one per hop), ``split_thr`` (0.01) and
    ``keep_thr`` (0.001), the authors' energy thresholds; ``max_channels`` (10, or one per hop);
    ``pool`` (2); ``bias`` (Saab bias making responses non-negative); ``fit_max_images``: fit on
    at most this many images sampled with ``seed`` (0 = all); ``batch_images``: images per batch
    in fit and transform (bounds memory); ``dtype`` of the responses.
    """

    def __init__(self, num_hops: int = 3, kernel_size: int | Sequence[int] = 3,
                 split_thr: float = 0.01, keep_thr: float = 0.001,
                 max_channels: int | Sequence[int] = 10, pool: int = 2, bias: bool = True,
                 fit_max_images: int = 10000, batch_images: int = 512, seed: int = 0,
                 dtype: str = "float32"):
        self.num_hops = int(num_hops)
        self.kernel_size = self._per_hop(kernel_size, "kernel_size")
        self.max_channels = self._per_hop(max_channels, "max_channels")
        self.split_thr = float(split_thr)
        self.keep_thr = float(keep_thr)
        self.pool = int(pool)
        self.bias = bool(bias)
        self.fit_max_images = int(fit_max_images)
        self.batch_images = int(batch_images)
        self.seed = int(seed)
        self.dtype = str(dtype)
        self.hops: list[Hop] = []
        if self.keep_thr > self.split_thr:
            raise ValueError(f"keep_thr ({keep_thr}) must not exceed split_thr ({split_thr})")

    def _per_hop(self, value, name) -> list[int]:
        vals = [int(value)] * self.num_hops if np.isscalar(value) else [int(v) for v in value]
        if len(vals) != self.num_hops:
            raise ValueError(f"{name}: expected {self.num_hops} values, got {len(vals)}")
        return vals

    def config(self) -> dict:
        return {"num_hops": self.num_hops, "kernel_size": self.kernel_size,
                "split_thr": self.split_thr, "keep_thr": self.keep_thr,
                "max_channels": self.max_channels, "pool": self.pool, "bias": self.bias,
                "fit_max_images": self.fit_max_images, "batch_images": self.batch_images,
                "seed": self.seed, "dtype": self.dtype}

    # ------------------------------------------------------------------------------- fit
    def _batches(self, n: int):
        step = max(1, self.batch_images)
        for i in range(0, n, step):
            yield slice(i, min(n, i + step))

    def _unit_inputs(self, a: np.ndarray, hop: int, parents: list[int]) -> list[np.ndarray]:
        """Flattened neighbourhoods of each unit, for one batch of hop inputs ``a``."""
        k = self.kernel_size[hop]
        if hop == 0:
            return [neighbourhoods(a, k)]
        return [neighbourhoods(a[..., p:p + 1], k) for p in parents]

    def fit(self, x: np.ndarray, y=None) -> "PixelHop":
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"PixelHop.fit expects (N, H, W, C), got shape {x.shape}")
        if self.fit_max_images and len(x) > self.fit_max_images:
            rng = np.random.default_rng(self.seed)
            x = x[np.sort(rng.choice(len(x), self.fit_max_images, replace=False))]
        self.input_shape_ = tuple(int(s) for s in x.shape[1:])
        self.hops = []
        current = x                                  # input of the hop being fitted
        parent_energy = np.ones(1)                   # energy of each unit's input channel
        parents = [-1]
        for hop in range(self.num_hops):
            if not parents:
                self.hops.append(Hop())              # nothing passed on: empty hop
                continue
            accs: list[CovarianceAccumulator | None] = [None] * len(parents)
            for sl in self._batches(len(current)):
                batch = current[sl].astype(np.float64)       # windows are copied once, in float64
                for u, vecs in enumerate(self._unit_inputs(batch, hop, parents)):
                    if accs[u] is None:
                        accs[u] = CovarianceAccumulator(vecs.shape[-1])
                    accs[u].add(vecs.reshape(-1, vecs.shape[-1]))
            units = []
            for acc in accs:
                mean, cov, bound = acc.finish()
                units.append(Saab(bias=self.bias)._fit_from_stats(mean, cov, bound, acc.n))
            # candidates across all units of the hop, by global energy
            cu, cc, ce = [], [], []
            for u, saab in enumerate(units):
                e = saab.ac_energy_ * parent_energy[u]            # AC channel j = kernel j + 1
                for j in np.flatnonzero(e > self.keep_thr):
                    cu.append(u)
                    cc.append(int(j) + 1)
                    ce.append(float(e[j]))
            ce_arr = np.array(ce, dtype=np.float64)
            order = np.lexsort((np.array(cc), np.array(cu), -ce_arr)) if ce else np.zeros(0, int)
            order = order[: self.max_channels[hop]]
            h = Hop(units=units, parents=list(parents),
                    out_unit=np.array(cu, np.int64)[order] if ce else np.zeros(0, np.int64),
                    out_channel=np.array(cc, np.int64)[order] if ce else np.zeros(0, np.int64),
                    energy=ce_arr[order] if ce else np.zeros(0), candidates=len(ce))
            h.split = h.energy > self.split_thr
            if hop == self.num_hops - 1:
                h.split[:] = False
            self.hops.append(h)
            if hop < self.num_hops - 1:
                current = self._transform_hop(current, hop)
                parents = [int(i) for i in np.flatnonzero(h.split)]
                parent_energy = h.energy[h.split]
        return self

    # ------------------------------------------------------------------------- transform
    def _transform_hop(self, a: np.ndarray, hop: int) -> np.ndarray:
        """Output of hop ``hop`` (pooled) for its input ``a`` (all images, batched)."""
        h = self.hops[hop]
        k = self.kernel_size[hop]
        n, hh, ww = a.shape[:3]
        oh = pooled_size(hh, k, self.pool)
        ow = pooled_size(ww, k, self.pool)
        out = np.empty((n, oh, ow, h.n_out), dtype=self.dtype)
        if h.n_out == 0:
            return out
        for sl in self._batches(n):
            out[sl] = self._hop_batch(a[sl].astype(np.float32, copy=False), hop)
        return out

    def _hop_batch(self, a: np.ndarray, hop: int) -> np.ndarray:
        h = self.hops[hop]
        vecs = self._unit_inputs(a, hop, h.parents)
        n, oh, ow = vecs[0].shape[:3]
        res = np.empty((n, oh, ow, h.n_out), dtype=np.float32)
        for u, v in enumerate(vecs):
            pos = np.flatnonzero(h.out_unit == u)
            if not len(pos):
                continue
            w, c = h.units[u].affine(channels=h.out_channel[pos], dtype=np.float32)
            res[..., pos] = v @ w + c
        return max_pool(res, self.pool).astype(self.dtype, copy=False)

    def transform(self, x: np.ndarray) -> list[np.ndarray]:
        """One array per hop, ``(N, H_h, W_h, K_h)``."""
        x = np.asarray(x)
        if not self.hops:
            raise RuntimeError("PixelHop is not fitted")
        if tuple(x.shape[1:]) != self.input_shape_:
            raise ValueError(f"expected inputs shaped (N, {self.input_shape_}), got {x.shape}")
        n = len(x)
        shapes = self.output_shapes()
        outs = [np.empty((n,) + s, dtype=self.dtype) for s in shapes]
        for sl in self._batches(n):
            a = x[sl].astype(np.float32, copy=False)
            for hop in range(self.num_hops):
                if self.hops[hop].n_out == 0:
                    break
                a = self._hop_batch(a, hop)
                outs[hop][sl] = a
                if hop + 1 < self.num_hops:
                    a = a[..., self.hops[hop].split]
        return outs

    def fit_transform(self, x, y=None) -> list[np.ndarray]:
        return self.fit(x).transform(x)

    def output_shapes(self) -> list[tuple[int, int, int]]:
        hh, ww = self.input_shape_[:2]
        shapes = []
        for hop in range(self.num_hops):
            hh = pooled_size(hh, self.kernel_size[hop], self.pool)
            ww = pooled_size(ww, self.kernel_size[hop], self.pool)
            shapes.append((hh, ww, self.hops[hop].n_out))
        return shapes

    # ------------------------------------------------------------------------- reporting
    def num_parameters(self) -> dict[str, int]:
        """Kernel weights actually used per hop (kept channels x kernel dimension), as the
        paper's Table 4 counts them (27 x 10, 9 x 10, 9 x 10 at most)."""
        out = {}
        for i, h in enumerate(self.hops):
            out[f"hop{i + 1}"] = int(sum(h.units[u].dim for u in h.out_unit))
        return out

    def summary(self) -> list[dict]:
        return [{"hop": i + 1, "units": len(h.units), "candidates": h.candidates,
                 "output_channels": h.n_out, "split_channels": int(h.split.sum()),
                 "energy": [round(float(e), 6) for e in h.energy]}
                for i, h in enumerate(self.hops)]

    # ------------------------------------------------------------------------- save/load
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able description, arrays) of the fitted tree."""
        arrays: dict[str, np.ndarray] = {}
        hops = []
        for i, h in enumerate(self.hops):
            for u, saab in enumerate(h.units):
                for name, arr in saab.state().items():
                    arrays[f"hop{i}/unit{u}/{name}"] = arr
            arrays[f"hop{i}/out_unit"] = h.out_unit
            arrays[f"hop{i}/out_channel"] = h.out_channel
            arrays[f"hop{i}/energy"] = h.energy
            arrays[f"hop{i}/split"] = h.split
            hops.append({"units": len(h.units), "parents": h.parents, "candidates": h.candidates})
        meta = {"format": FORMAT, "config": self.config(), "input_shape": list(self.input_shape_),
                "hops": hops, "summary": self.summary()}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays) -> "PixelHop":
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a PixelHop model (format {meta.get('format')!r})")
        ph = cls(**meta["config"])
        ph.input_shape_ = tuple(meta["input_shape"])
        ph.hops = []
        for i, hm in enumerate(meta["hops"]):
            units = [Saab.from_state({k: arrays[f"hop{i}/unit{u}/{k}"] for k in
                                      ("mean", "kernels", "variance", "energy", "bias",
                                       "n_samples_seen")}, bias=ph.bias)
                     for u in range(hm["units"])]
            ph.hops.append(Hop(units=units, parents=[int(p) for p in hm["parents"]],
                               out_unit=np.asarray(arrays[f"hop{i}/out_unit"], np.int64),
                               out_channel=np.asarray(arrays[f"hop{i}/out_channel"], np.int64),
                               energy=np.asarray(arrays[f"hop{i}/energy"], np.float64),
                               split=np.asarray(arrays[f"hop{i}/split"], bool),
                               candidates=int(hm["candidates"])))
        return ph

    def save(self, prefix: str | Path) -> None:
        """Write ``<prefix>.npz`` and ``<prefix>.json`` (atomically)."""
        from ..store import write_json_atomic  # noqa: PLC0415

        prefix = Path(prefix)
        meta, arrays = self.state()
        write_npz(prefix.with_name(prefix.name + ".npz"), arrays)
        write_json_atomic(prefix.with_name(prefix.name + ".json"), meta)

    @classmethod
    def load(cls, prefix: str | Path) -> "PixelHop":
        prefix = Path(prefix)
        meta = json.loads(prefix.with_name(prefix.name + ".json").read_text())
        with np.load(prefix.with_name(prefix.name + ".npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_state(meta, arrays)
