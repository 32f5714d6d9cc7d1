"""Procedural EM-like 3D volumes with nucleus and mitochondria labels (the built-in dataset).

:func:`make_em_volume` draws a block of tissue at a nominal ~8 nm isotropic voxel size, the way
a FIB-SEM stack looks: stained (dense) material is dark, unstained material is light.  The scene
is built as a float *stain density* map (0 = unstained, 1 = black), then imaged.  What is drawn,
in this order:

* **Cells**: a generalised Voronoi tessellation of seeds (also outside the volume; distances
  weighted and bent by smooth random fields), its walls drawn as thin dark plasma membranes;
  each cell's cytoplasm gets its own grey level, a slow cloudy variation and ribosome-like
  dark specks.
* **Nuclei** (labels ``nuc``, ``nuc_ids``): a few large irregular ellipsoids (radius 15-25 % of
  the smaller in-plane side), each centred on its own cell's seed so that no cell wall cuts
  through it; about ``clustered_fraction`` of them come as touching pairs in one (binucleate)
  cell, the second one smaller and cut back where it meets the first, so that the two share a
  face.  Inside: light euchromatin, dark heterochromatin patches lining the envelope, dark
  clumps and often a dense nucleolus; the envelope is a dark double membrane with a light gap
  (each nucleus of a pair has its own).  The label covers the interior and the whole envelope,
  up to the outer edge of the outer membrane.
* **Mitochondria** (labels ``mito``, ``mito_ids``): tubes of 7-15 voxels diameter swept along
  smooth random 3D curves in any direction, some branched, with a dark double outer membrane,
  a moderately dark matrix and cristae (tilted lamellae: a light lumen between dark
  membranes).  Each keeps >= 3 voxels off nuclei and cell walls.  About ``clustered_fraction``
  of them lie in clusters: each pressed against another (mostly side by side) and cut back
  where they would overlap, so that the two share a face and the contact shows as two dark
  outer membranes, one of each; the others keep >= 3 voxels off other mitochondria.  The label
  covers the membranes, up to the outer edge of the outer one.
* **Instances**: every id (``mito_ids``, ``nuc_ids``) is one 26-connected component (an object
  that the volume's border cuts in pieces gets an id per piece); touching instances make the
  connected components of ``mito`` / ``nuc`` merge several ids.
* **Distractors**, never labelled and never touching a label: light vesicles with a dark rim
  (alone and in clusters), ER tubes and flat ER cisternae (pairs of dark lines), very dark
  homogeneous lipid droplets, dark granular lysosomes and mid-dark single-membrane peroxisomes,
  i.e. dark things of mitochondrion-like grey level that differ from mitochondria by shape,
  membrane and texture only.
* **Imaging**: fine random texture, a slight 3D blur, per-slice brightness/contrast drift, a slow
  in-plane illumination gradient and signal-dependent (Poisson-like) plus read-out noise,
  quantised to uint8.

Everything is drawn with numpy/scipy array operations inside each object's bounding box (cell
walls: inside tiles near a wall); the result depends only on ``shape``, ``seed`` and
``clustered_fraction`` (0 draws the images and masks of earlier versions, where nothing touches;
only an id that the border cuts in pieces is now numbered per piece).
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage as ndi

__all__ = ["SyntheticVolume", "make_em_volume"]

# Stain densities (0 = unstained / bright, 1 = fully stained / black).
_MEMBRANE = 0.86        # lipid bilayer, ~1 voxel thick
_MEMBRANE_WIDTH = 0.75  # e-folding half-width (voxels) of a membrane's density profile
_SPECK = 0.6            # extra density of one ribosome-like speck voxel
_NUCLEOPLASM = (0.17, 0.25)
_HETEROCHROMATIN = (0.58, 0.68)
_NUCLEOLUS = (0.62, 0.72)
_MATRIX = (0.44, 0.62)  # mitochondrial matrix
_CRISTA_SPACE = 0.18    # lumen of a crista (intracristal space)
_CYTOPLASM = (0.22, 0.42)

# Imaging: intensity = BRIGHT - CONTRAST * density, then blur, drift, gradient, noise.
_BRIGHT, _CONTRAST = 232.0, 215.0
_BLUR_SIGMA = (0.55, 0.7, 0.7)  # voxels (Z, Y, X)
_TEXTURE_STD = 0.14             # white density texture before the blur
_SHOT_GAIN, _READ_STD = 0.4, 4.0  # noise variance = gain * intensity + read_std**2

# Occupancy bits: what may not be drawn over (_OCC_LABEL: any label, nucleus or mitochondrion).
_OCC_NUC, _OCC_WALL, _OCC_OTHER, _OCC_MITO = 1, 2, 4, 8
_OCC_LABEL = _OCC_NUC | _OCC_MITO
_LABEL_MARGIN = 1.5  # voxels around a label kept free of distractors and other labels
_WALL_BAND = 2.5     # voxels either side of a cell wall kept free of mitochondria


@dataclass(frozen=True)
class SyntheticVolume:
    """One generated volume; all arrays are (Z, Y, X) voxels.

    image: uint8 EM-like grey levels (membranes dark, cytoplasm mid-grey).
    nuc: uint8 in {0, 1}, nucleus interior plus envelope.
    mito: uint8 in {0, 1}, mitochondria interior plus their double membrane.
    mito_ids: uint32 mitochondrion instance ids, 0 = background, 1..N.
    nuc_ids: uint32 nucleus instance ids, 0 = background, 1..M.

    Every instance id is one 26-connected component, but instances may touch (clusters of
    mitochondria, pairs of nuclei), so the connected components of ``mito`` or ``nuc`` can
    merge several instances.
    """

    image: np.ndarray
    nuc: np.ndarray
    mito: np.ndarray
    mito_ids: np.ndarray
    nuc_ids: np.ndarray


@dataclass
class _Scene:
    """Mutable drawing state: (Z, Y, X) density (float32), labels, occupancy bits, size scale."""

    density: np.ndarray
    nuc_ids: np.ndarray
    mito_ids: np.ndarray
    occ: np.ndarray
    scale: float  # organelle size factor: 1 for volumes >= 96 voxels in-plane, less for tiny ones

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.density.shape


@dataclass(frozen=True)
class _Nucleus:
    """Irregular ellipsoid: centre (3,) and semi-axes (3,) in voxels, rotation rows = axes,
    radial bumps sum_j amps[j] * sin(freqs[j] . u + phases[j]) of the unit direction u."""

    center: np.ndarray
    semi_axes: np.ndarray
    rot: np.ndarray
    freqs: np.ndarray
    phases: np.ndarray
    amps: np.ndarray
    weight: float  # Voronoi weight of its cell's seed
    partner: "_Nucleus | None" = None  # a second nucleus of the same cell, touching this one

    @property
    def reach(self) -> float:
        """Upper bound (voxels) of the distance from the centre to the surface."""
        return float(self.semi_axes.max() * (1.0 + self.amps.sum()))

    @property
    def cell_reach(self) -> float:
        """Upper bound (voxels) of the distance from the centre to this nucleus' or its partner's
        surface: what the walls of its cell must keep clear of."""
        if self.partner is None:
            return self.reach
        return max(self.reach, float(np.linalg.norm(self.partner.center - self.center)) + self.partner.reach)


# ---------------------------------------------------------------------------- small helpers


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows of v (..., 3) scaled to unit length."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _random_unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Isotropic random unit vector(s), (3,) or (n, 3)."""
    return _unit(rng.standard_normal(3 if n is None else (n, 3)))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random 3x3 rotation matrix (rows orthonormal)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _box(lo: np.ndarray, hi: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer box [lo, hi) covering the float range [lo, hi], clipped to shape; None if empty."""
    a = np.maximum(np.floor(lo).astype(int), 0)
    b = np.minimum(np.ceil(hi).astype(int) + 1, np.asarray(shape))
    return None if np.any(b <= a) else (a, b)


def _slices(lo, hi) -> tuple[slice, slice, slice]:
    """Index of the box [lo, hi)."""
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _axes(lo, hi) -> list[np.ndarray]:
    """Voxel-centre coordinates (float32) along Z, Y, X of the box [lo, hi)."""
    return [np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi)]


def _dist(axes: list[np.ndarray], center) -> np.ndarray:
    """Euclidean distance (voxels) of each voxel of the grid `axes` to `center`, (nz, ny, nx)."""
    dz, dy, dx = ((a - np.float32(c)) ** 2 for a, c in zip(axes, center))
    return np.sqrt(dz[:, None, None] + (dy[:, None] + dx[None, :])[None])


def _affine(axes: list[np.ndarray], center, vec) -> np.ndarray:
    """(x - center) . vec on the grid `axes`, (nz, ny, nx)."""
    dz, dy, dx = ((a - np.float32(c)) * np.float32(v) for a, c, v in zip(axes, center, vec))
    return dz[:, None, None] + (dy[:, None] + dx[None, :])[None]


def _band(x: np.ndarray, center: float, width: float = _MEMBRANE_WIDTH) -> np.ndarray:
    """Gaussian bump exp(-((x - center) / width)^2): a membrane's density profile across it."""
    return np.exp(-np.square((x - np.float32(center)) / np.float32(width)))


def _coverage(sdf: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Anti-aliased inside fraction of a voxel from its signed distance (voxels, < 0 inside)."""
    return np.clip(0.5 - sdf / np.float32(soft), 0.0, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _upsample_linear(coarse: np.ndarray, shape) -> np.ndarray:
    """Trilinear resampling of a grid whose samples sit at linspace(0, n - 1, c) to `shape`."""
    shape = tuple(int(n) for n in shape)
    if coarse.shape == shape:
        return coarse
    zoom = [n / c for n, c in zip(shape, coarse.shape)]
    return ndi.zoom(coarse, zoom, order=1, mode="nearest", grid_mode=False)


def _coarse_count(n: int, factor: float) -> int:
    """Number of samples of a coarse grid spanning n voxels with spacing <= factor."""
    return int(np.ceil((n - 1) / factor)) + 1


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian random field, zero mean and ~unit std, correlation length ~sigma voxels; float32
    of `shape`.  Drawn on a grid coarser by ~sigma/2 and linearly upsampled (cheap)."""
    factor = max(1.0, sigma / 2.0)
    cshape = tuple(_coarse_count(n, factor) for n in shape)
    c = rng.standard_normal(cshape, dtype=np.float32)
    s = sigma / factor
    c = ndi.gaussian_filter(c, s, mode="reflect")
    c *= np.float32((2.0 * np.sqrt(np.pi) * s) ** (len(shape) / 2.0))  # undo the filter's std loss
    return _upsample_linear(c, shape)


def _smooth_walk(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """1D smooth random sequence, (n,) float64, zero mean, ~unit std, correlation ~sigma steps."""
    walk = ndi.gaussian_filter1d(rng.standard_normal(n), sigma, mode="reflect")
    return walk * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


# ---------------------------------------------------------------------------- cells


def _separable_field(rng: np.random.Generator, shape, length: float, rank: int = 3):
    """Smooth random field f(z, y, x) = sum_k a_k(z) P_k(y, x), ~unit std, correlation ~length
    voxels, kept as its factors a (rank, Z) and P (rank, Y, X) (cheap to evaluate on a box)."""
    a = np.stack([_smooth_walk(rng, shape[0], length) for _ in range(rank)]).astype(np.float32)
    p = np.stack([_smooth_noise(rng, shape[1:], length) for _ in range(rank)])
    return a / np.float32(np.sqrt(rank)), p


def _field_at(field, sl, clamp: float = 2.0) -> np.ndarray:
    """A :func:`_separable_field` on the box `sl` (three slices), softly clamped to +-clamp."""
    a, p = field
    out = a[0, sl[0], None, None] * p[0, sl[1], sl[2]][None]
    for k in range(1, len(a)):
        out += a[k, sl[0], None, None] * p[k, sl[1], sl[2]][None]
    return np.tanh(out / np.float32(clamp)) * np.float32(clamp)


@dataclass(frozen=True)
class _Cells:
    """Generalised Voronoi cells: seed i owns the voxels x where
    D_i(x) = weights[i] * |x - seeds[i]| + bends[i] . fields(x) is smallest (voxels).
    seeds (K, 3), weights (K,), bends (K, F) with F bending fields of |value| <= 2."""

    seeds: np.ndarray
    weights: np.ndarray
    bends: np.ndarray
    fields: tuple

    def bend_bound(self) -> np.ndarray:
        """(K,) bound on |bends[i] . fields(x)| over the volume."""
        return 2.0 * np.abs(self.bends).sum(axis=1)


def _tiles(shape, size=(8, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [lo, hi) tiling the volume: (T, 3) int arrays."""
    starts = [np.arange(0, n, s) for n, s in zip(shape, size)]
    lo = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, 3)
    hi = np.minimum(lo + np.asarray(size), np.asarray(shape))
    return lo, hi


def _tile_candidates(lo, hi, cells: _Cells, slack: float) -> np.ndarray:
    """(T, K) bool: the seeds whose D can come within `slack` of the smallest D in each tile."""
    p = cells.seeds[None]                                          # (1, K, 3)
    a, b = lo[:, None].astype(float), (hi[:, None] - 1).astype(float)  # (T, 1, 3)
    bound = cells.bend_bound()
    near = np.linalg.norm(np.maximum(np.maximum(a - p, p - b), 0.0), axis=-1) * cells.weights - bound
    far = np.linalg.norm(np.maximum(np.abs(p - a), np.abs(p - b)), axis=-1) * cells.weights + bound
    return near <= far.min(axis=1, keepdims=True) + slack


def _wall_distance(axes, sl, cells: _Cells, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """On a box (grid `axes`, index `sl`) with candidate seeds idx (>= 2): approximate distance
    (voxels) to the nearest cell wall, (D_second - D_first) / 2, and the owning seed index."""
    fields = [_field_at(f, sl) for f in cells.fields]
    d = np.empty((len(idx),) + fields[0].shape, np.float32)
    for row, i in zip(d, idx):
        row[...] = _dist(axes, cells.seeds[i]) * np.float32(cells.weights[i])
        for f, c in zip(fields, cells.bends[i]):
            if c:
                row += np.float32(c) * f
    two = np.partition(d, 1, axis=0)
    return (two[1] - two[0]) * np.float32(0.5), idx[np.argmin(d, axis=0)]


def _draw_cells(scene: _Scene, rng: np.random.Generator, cells: _Cells) -> None:
    """Fill every voxel with its cell's cytoplasm density (a grey level per cell plus a slow
    cloudy variation) and draw the cell walls (membranes)."""
    shape = scene.shape
    shades = rng.uniform(*_CYTOPLASM, len(cells.seeds)).astype(np.float32)
    cloud = _separable_field(rng, shape, 0.06 * min(shape[1:]) + 4.0)
    lo, hi = _tiles(shape)
    cand = _tile_candidates(lo, hi, cells, 8.0)
    for t in range(len(lo)):
        sl = _slices(lo[t], hi[t])
        idx = np.flatnonzero(cand[t])
        dens = np.float32(0.015) * _field_at(cloud, sl)
        if len(idx) == 1:
            scene.density[sl] = dens + shades[idx[0]]
            continue
        m, owner = _wall_distance(_axes(lo[t], hi[t]), sl, cells, idx)
        dens += shades[owner]
        scene.density[sl] = np.maximum(dens, _MEMBRANE * _band(m, 0.0, 0.85))
        scene.occ[sl] |= np.where(m < _WALL_BAND, _OCC_WALL, 0).astype(np.uint8)


def _plan_cells(rng: np.random.Generator, shape, nuclei: list[_Nucleus], gap: float, bend: float) -> _Cells:
    """Cell seeds: the nucleus centres first (unbent), then Poisson-disc seeds in a padded box
    (walls bent by up to ~bend voxels), each far enough from every nucleus that its wall stays
    >= gap + 2.5 * bend voxels off the nucleus."""
    length = float(min(shape[1:]))
    pad = 0.35 * length
    lo = np.full(3, -pad)
    hi = np.asarray(shape, float) - 1.0 + pad
    spacing = max(0.5 * length, 64.0)
    seeds = [n.center for n in nuclei]
    weights = [n.weight for n in nuclei]
    expected = np.prod(hi - lo) / spacing**3
    for _ in range(int(min(40 * expected + 60, 6000))):
        p = rng.uniform(lo, hi)
        w = rng.uniform(0.9, 1.1)
        if seeds and np.min(np.linalg.norm(np.asarray(seeds) - p, axis=1)) < spacing:
            continue
        if all(_wall_clear(n.center, n.weight, n.cell_reach + gap + 2.5 * bend, p, w) for n in nuclei):
            seeds.append(p)
            weights.append(w)
    if len(seeds) < 2:  # a single cell: add a far-away seed so that the code paths stay uniform
        seeds.append(hi + 10 * length)
        weights.append(1.0)
    bends = rng.uniform(-bend, bend, (len(seeds), 2))
    bends[: len(nuclei)] = 0.0
    fields = tuple(_separable_field(rng, shape, 0.07 * length + 2.0) for _ in range(2))
    return _Cells(np.asarray(seeds, float), np.asarray(weights, float), bends, fields)


def _wall_clear(c, wc, radius, p, wp) -> bool:
    """True if the weighted-Voronoi wall between seeds c and p is >= radius from c."""
    return wp * np.linalg.norm(np.asarray(p) - c) / (wc + wp) >= radius


# ---------------------------------------------------------------------------- nuclei


def _random_nucleus(rng: np.random.Generator, shape) -> _Nucleus:
    """Random nucleus geometry: mean radius 15-25 % of the smaller in-plane side, centre in the
    volume's Z range and up to 0.2 radius outside it in Y and X."""
    radius = rng.uniform(0.15, 0.25) * min(shape[1:])
    semi = radius * rng.uniform(0.75, 1.3, 3)
    semi *= radius / np.cbrt(np.prod(semi))
    overhang = np.array([0.0, 0.2, 0.2]) * radius
    center = rng.uniform(-overhang, np.asarray(shape) - 1 + overhang)
    k = 6
    freqs = _random_unit(rng, k) * rng.uniform(1.0, 5.0, (k, 1))
    return _Nucleus(center, semi, _random_rotation(rng), freqs, rng.uniform(0, 2 * np.pi, k),
                    rng.uniform(0.01, 0.05, k), float(rng.uniform(0.95, 1.1)))


def _nucleus_sdf(nuc: _Nucleus, axes: list[np.ndarray]) -> np.ndarray:
    """Approximate signed distance (voxels, < 0 inside) to the nucleus surface on grid `axes`:
    (rho - 1 - bumps) / |grad rho| with rho the ellipsoidal radius."""
    q = [_affine(axes, nuc.center, r) for r in nuc.rot]
    a = nuc.semi_axes.astype(np.float32)
    rho = np.sqrt(sum((qk / ak) ** 2 for qk, ak in zip(q, a)))
    grad = np.sqrt(sum((qk / ak**2) ** 2 for qk, ak in zip(q, a))) / np.maximum(rho, 1e-3)
    norm = np.maximum(np.sqrt(sum(qk**2 for qk in q)), 1e-3)
    bumps = sum(amp * np.sin(sum(qk * np.float32(f) for qk, f in zip(q, freq)) / norm + ph)
                for freq, ph, amp in zip(nuc.freqs, nuc.phases, nuc.amps))
    return (rho - 1.0 - bumps) / np.maximum(grad, 1e-4)


def _coarse_axes(lo, hi, factor: float) -> list[np.ndarray]:
    """Coordinates (float32) of a grid spanning the box [lo, hi) with spacing <= factor voxels."""
    return [np.linspace(a, b - 1, _coarse_count(b - a, factor), dtype=np.float32) for a, b in zip(lo, hi)]


def _nucleus_box(nuc: _Nucleus, shape, rim: float = 4.0):
    """Tight box [lo, hi) of the nucleus plus `rim` voxels (found on a 4-voxel grid), clipped to
    shape; None if it misses the volume."""
    box = _box(nuc.center - nuc.reach - rim, nuc.center + nuc.reach + rim, shape)
    if box is None:
        return None
    axes = _coarse_axes(*box, 4.0)
    near = np.nonzero(_nucleus_sdf(nuc, axes) < rim + 4.0 * np.sqrt(3.0))
    if len(near[0]) == 0:
        return None
    lo = np.array([ax[i.min()] for ax, i in zip(axes, near)])
    hi = np.array([ax[i.max()] for ax, i in zip(axes, near)])
    return _box(lo - 4.0, hi + 4.0, shape)


def _nucleus_sdf_box(nuc: _Nucleus, lo, hi, factor: float = 4.0) -> np.ndarray:
    """Nucleus signed distance on the box [lo, hi), computed every `factor` voxels and upsampled
    linearly (the field is smooth, so this is accurate to a small fraction of a voxel)."""
    coarse = _nucleus_sdf(nuc, _coarse_axes(lo, hi, factor))
    return _upsample_linear(coarse, np.asarray(hi) - np.asarray(lo))


def _nucleus_voxels(nuc: _Nucleus, shape, clip: _Nucleus | None = None) -> float:
    """Estimated number of voxels of the nucleus inside the volume (coarse sampling), less those
    inside `clip` (a nucleus it is cut back by, see :func:`_draw_nucleus`)."""
    box = _nucleus_box(nuc, shape)
    if box is None:
        return 0.0
    lo, hi = box
    axes = _coarse_axes(lo, hi, 4.0)
    inside = _nucleus_sdf(nuc, axes) <= 0
    if clip is not None:
        inside &= _nucleus_sdf(clip, axes) > -0.3
    return float(np.mean(inside) * np.prod(hi - lo))


def _nucleus_volume(nuc: _Nucleus) -> float:
    """Volume (voxels) of the nucleus' ellipsoid, ignoring its bumps and the volume's borders."""
    return float(4.0 / 3.0 * np.pi * np.prod(nuc.semi_axes))


def _cells_clear(a: _Nucleus, b: _Nucleus, gap: float) -> bool:
    """True if the wall between the cells of nuclei a and b stays >= gap voxels off both (and
    off their partners)."""
    return (_wall_clear(a.center, a.weight, a.cell_reach + gap, b.center, b.weight)
            and _wall_clear(b.center, b.weight, b.cell_reach + gap, a.center, a.weight))


def _ellipsoid_radius(nuc: _Nucleus, u: np.ndarray) -> float:
    """Distance (voxels) from the centre to the nucleus' ellipsoid (without bumps) along unit u."""
    return float(1.0 / np.linalg.norm((nuc.rot @ u) / nuc.semi_axes))


def _pair_nucleus(rng: np.random.Generator, shape, nuc: _Nucleus, others: list[_Nucleus],
                  gap: float, room: float, tries: int = 8):
    """A second nucleus in nuc's cell (a binucleate cell), pressed against nuc: a smaller
    irregular ellipsoid whose centre lies mostly in-plane off nuc's surface, overlapping it by
    30-60 % of its own radius (it is clipped by nuc when drawn), so the two share a face inside
    the volume.  Returns (nuc with its partner, estimated partner voxels in the volume) or None."""
    base = float(np.cbrt(np.prod(nuc.semi_axes)))
    for _ in range(tries):
        radius = base * rng.uniform(0.6, 0.9)
        semi = radius * rng.uniform(0.8, 1.25, 3)
        semi *= radius / np.cbrt(np.prod(semi))
        k = 6
        freqs = _random_unit(rng, k) * rng.uniform(1.0, 5.0, (k, 1))
        part = _Nucleus(np.zeros(3), semi, _random_rotation(rng), freqs, rng.uniform(0, 2 * np.pi, k),
                        rng.uniform(0.01, 0.05, k), nuc.weight)
        u = _unit(np.array([0.3 * rng.standard_normal(), *_unit(rng.standard_normal(2))]))
        contact = nuc.center + u * _ellipsoid_radius(nuc, u)
        if np.any(contact < 2) or np.any(contact > np.asarray(shape) - 3):
            continue
        center = contact + u * rng.uniform(0.4, 0.7) * _ellipsoid_radius(part, -u)
        part = _Nucleus(center, part.semi_axes, part.rot, part.freqs, part.phases, part.amps, nuc.weight)
        paired = _Nucleus(nuc.center, nuc.semi_axes, nuc.rot, nuc.freqs, nuc.phases, nuc.amps, nuc.weight, part)
        if not all(_cells_clear(o, paired, gap) for o in others):
            continue
        if _nucleus_voxels(part, shape) < 0.3 * _nucleus_volume(part):
            continue
        voxels = _nucleus_voxels(part, shape, clip=nuc)
        if voxels > room:
            continue
        return paired, voxels
    return None


def _plan_nuclei(rng: np.random.Generator, shape, gap: float, paired_fraction: float = 0.0) -> list[_Nucleus]:
    """Nuclei filling ~12-20 % of the volume (at most 25 %; fewer in volumes too thin or small
    for that), each at least 30 % inside it and far enough from the others that the walls of
    their cells stay >= gap voxels off every nucleus.  About `paired_fraction` of the nuclei
    come as touching pairs sharing one cell (see :func:`_pair_nucleus`)."""
    volume = float(np.prod(shape))
    target = rng.uniform(0.12, 0.2) * volume
    nuclei: list[_Nucleus] = []
    total = 0.0
    count = paired = 0
    for _ in range(200):
        if total >= target:
            break
        nuc = _random_nucleus(rng, shape)
        if not all(_cells_clear(o, nuc, gap) for o in nuclei):
            continue
        voxels = _nucleus_voxels(nuc, shape)
        if voxels < 0.3 * _nucleus_volume(nuc) or total + voxels > 0.25 * volume:
            continue
        if paired < paired_fraction * (count + 2):
            pair = _pair_nucleus(rng, shape, nuc, nuclei, gap, 0.25 * volume - total - voxels)
            if pair is not None:
                nuc, extra = pair
                voxels += extra
                paired += 2
        nuclei.append(nuc)
        count += 1 if nuc.partner is None else 2
        total += voxels
    return nuclei


def _draw_nucleus(scene: _Scene, rng: np.random.Generator, nuc: _Nucleus, label: int,
                  clip: _Nucleus | None = None) -> None:
    """Paint one nucleus (chromatin, nucleolus, double envelope) and set its label; with `clip`
    (an already drawn nucleus it touches), its shape is cut back to end where clip's ends, so
    that the two share a face and each keeps its own envelope."""
    box = _nucleus_box(nuc, scene.shape)
    if box is None:
        return
    lo, hi = box
    sl = _slices(lo, hi)
    sdf = _nucleus_sdf_box(nuc, lo, hi)
    if clip is not None:
        np.maximum(sdf, np.float32(-0.3) - _nucleus_sdf_box(clip, lo, hi), out=sdf)
    depth = -sdf
    chrom = _smooth_noise(rng, sdf.shape, 3.0 * scene.scale + 1.0)
    dens = rng.uniform(*_NUCLEOPLASM) + 0.04 * chrom
    hetero = np.exp(-np.maximum(depth - 4.2, 0.0) / (rng.uniform(3.0, 7.0) * scene.scale))
    hetero *= _sigmoid(3.0 * (chrom + rng.uniform(-0.2, 0.6)))
    hetero = np.maximum(hetero, _sigmoid(4.0 * (chrom - 1.4)) * np.clip(depth - 5.0, 0.0, 1.0))
    dens += hetero * (rng.uniform(*_HETEROCHROMATIN) - dens)
    if rng.random() < 0.7:
        _add_nucleolus(rng, nuc, lo, hi, dens, chrom)
    gap = _band(depth, 2.2, 0.8)  # light perinuclear space between the two membranes
    dens += gap * (0.15 - dens)
    view = scene.density[sl]
    view += _coverage(sdf) * (dens - view)
    np.maximum(view, _MEMBRANE * _band(sdf, -0.8), out=view)
    np.maximum(view, 0.95 * _MEMBRANE * _band(sdf, -3.6), out=view)
    ids = scene.nuc_ids[sl]
    ids[(sdf <= 0) & (ids == 0)] = label
    scene.occ[sl] |= np.where(sdf < 3.0, _OCC_NUC, 0).astype(np.uint8)


def _add_nucleolus(rng, nuc: _Nucleus, lo, hi, dens: np.ndarray, chrom: np.ndarray) -> None:
    """Blend a dense granular nucleolus (sphere, ~20-30 % of the nuclear radius) into `dens`."""
    r = rng.uniform(0.2, 0.3) * float(nuc.semi_axes.min())
    offset = _random_unit(rng) * rng.uniform(0, 0.35) * float(nuc.semi_axes.min())
    sdf = _dist(_axes(lo, hi), nuc.center + offset) - r
    dens += _coverage(sdf, 2.0) * (rng.uniform(*_NUCLEOLUS) + 0.06 * chrom - dens)


# ---------------------------------------------------------------------------- tubes (mito, ER)


def _random_curve(rng, center, direction, length: float, step: float, bend: float) -> np.ndarray:
    """Smooth random 3D polyline (n, 3) of arc length ~length, point spacing `step`, centred on
    `center` and heading along `direction`; `bend` ~ typical direction change (radians)."""
    n = max(2, int(round(length / step)) + 1)
    sigma = max(1.0, 10.0 / step)
    wobble = ndi.gaussian_filter1d(rng.standard_normal((n, 3)), sigma, axis=0, mode="nearest")
    wobble *= np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    dirs = _unit(direction + bend * wobble)
    pts = np.concatenate([np.zeros((1, 3)), np.cumsum(dirs[:-1] * step, axis=0)])
    return pts - pts[n // 2] + center


def _mito_radius(rng, scale: float) -> float:
    """Random mitochondrion radius, 3.5-7.5 voxels times `scale`."""
    return (3.5 + 4.0 * np.sqrt(rng.random())) * scale


def _mito_skeleton(rng, occ: np.ndarray, center, scale: float, r0: float | None = None,
                   main_dir: np.ndarray | None = None, ids: np.ndarray | None = None):
    """Centre points (n, 3), radii (n,) and arc lengths (n,) of one mitochondrion around `center`
    (radius 3.5-7.5, length up to 30-130 voxels, times `scale`), cut short where it would run
    into something occupied (occ != 0), maybe with one branch; None if too little room.
    With `ids` (a mitochondrion it is to touch): occupancy of mitochondria is ignored and the
    centre line only keeps >= 0.4 radius off labelled voxels (ids != 0) instead."""
    r0 = _mito_radius(rng, scale) if r0 is None else r0
    step = max(1.0, 0.4 * r0)
    main_dir = _random_unit(rng) if main_dir is None else main_dir
    bits = None if ids is None else _OCC_NUC | _OCC_WALL | _OCC_OTHER

    def free(points: np.ndarray, radius: float) -> np.ndarray:
        ok = _free_points(occ, points, np.full(len(points), 1.15 * radius), 2.0, bits)
        if ids is not None:
            ok &= _free_points(ids, points, np.full(len(points), 0.4 * radius), 0.0)
        return ok

    pts = _random_curve(rng, center, main_dir, rng.uniform(30.0, 130.0) * scale, step, rng.uniform(0.3, 0.8))
    i, j = _free_run(free(pts, r0), len(pts) // 2)
    if (j - i) * step < max(4.0 * r0, 16.0 * scale):
        return None
    pts = pts[i:j]
    wobble = 1.0 + 0.1 * np.clip(_smooth_walk(rng, len(pts), 6.0), -1.5, 1.5)
    radii = r0 * _taper(len(pts), step, r0) * wobble
    arc = np.arange(len(pts)) * step
    if rng.random() < 0.3 and len(pts) > 8:
        k = int(rng.integers(len(pts) // 4, 3 * len(pts) // 4))
        side = _unit(_random_unit(rng) - 0.5 * main_dir)
        bpts = _random_curve(rng, pts[k], side, rng.uniform(0.3, 0.7) * len(pts) * step, step, 0.4)
        bpts = bpts - bpts[0] + pts[k]
        rb = radii[k] * rng.uniform(0.7, 0.95)
        _, m = _free_run(free(bpts, rb), 0)
        if (m - 1) * step >= 2.0 * rb:
            bpts = bpts[1:m]
            pts = np.concatenate([pts, bpts])
            radii = np.concatenate([radii, rb * _taper(m, step, rb, both=False)[1:]])
            arc = np.concatenate([arc, arc[k] + np.arange(1, m) * step])
    return pts, radii, arc


def _free_points(occ: np.ndarray, pts: np.ndarray, radii: np.ndarray, margin: float,
                 bits: int | None = None) -> np.ndarray:
    """(n,) bool: no occupied voxel (occ != 0, or occ & bits != 0) at the centre nor at 26 probes
    at distance radius + margin around each centre (a cheap test: it misses only thin obstacles
    between probes)."""
    probes = pts[:, None] + (radii[:, None, None] + margin) * _PROBES[None]
    probes = np.round(np.concatenate([pts[:, None], probes], axis=1)).astype(int)  # (n, 27, 3)
    inside = np.all((probes >= 0) & (probes < np.asarray(occ.shape)), axis=2)
    p = np.where(inside[..., None], probes, 0)
    values = occ[p[..., 0], p[..., 1], p[..., 2]]
    hit = ((values if bits is None else values & bits) != 0) & inside
    return ~hit.any(axis=1)


def _free_run(free: np.ndarray, start: int) -> tuple[int, int]:
    """The maximal run [i, j) of True in `free` containing index `start` (i == j if none)."""
    if not free[start]:
        return start, start
    blocked = np.flatnonzero(~free)
    before, after = blocked[blocked < start], blocked[blocked > start]
    return (int(before[-1]) + 1 if len(before) else 0), (int(after[0]) if len(after) else len(free))


def _taper(n: int, step: float, r0: float, both: bool = True) -> np.ndarray:
    """Radius factor (n,) that narrows a tube to ~75 % over ~1.5 radii at its free end(s)."""
    s = np.arange(n) * step
    to_end = s[-1] - s
    if both:
        to_end = np.minimum(to_end, s)
    return 0.75 + 0.25 * np.minimum(1.0, to_end / (1.5 * r0))


def _tube_sdf(pts: np.ndarray, radii: np.ndarray, shape, reach: float):
    """Signed distance (voxels, < 0 inside, +inf beyond `reach`) to a union of spheres
    (pts (n, 3), radii (n,)) on their bounding box, and the index of the nearest sphere.
    Returns (lo, hi, sdf, nearest) or None if the box misses the volume."""
    box = _box(pts.min(0) - radii.max() - reach, pts.max(0) + radii.max() + reach, shape)
    if box is None:
        return None
    lo, hi = box
    sdf = np.full(tuple(hi - lo), np.inf, np.float32)
    nearest = np.zeros(sdf.shape, np.int32)
    half = (radii + reach)[:, None]
    a = np.maximum(np.floor(pts - half).astype(int), lo)  # per-sphere boxes, volume coords
    b = np.minimum(np.ceil(pts + half).astype(int) + 1, hi)
    for i in np.flatnonzero(np.all(b > a, axis=1)):
        d = _dist(_axes(a[i], b[i]), pts[i]) - np.float32(radii[i])
        sl = _slices(a[i] - lo, b[i] - lo)
        closer = d < sdf[sl]
        sdf[sl][closer] = d[closer]
        nearest[sl][closer] = i
    return lo, hi, sdf, nearest


# 26 unit directions to the neighbours of a voxel: probes around a tube's centre line.
_PROBES = _unit(np.array([(z, y, x) for z in (-1, 0, 1) for y in (-1, 0, 1) for x in (-1, 0, 1)
                          if (z, y, x) != (0, 0, 0)], float))


def _mito_is_free(scene: _Scene, lo, sdf, bits: int = 0xFF) -> bool:
    """True if the mitochondrion (sdf on the box at lo) plus a 2-voxel rim touches nothing
    (no occupancy bit of `bits`)."""
    sl = _slices(lo, np.asarray(lo) + sdf.shape)
    return not np.any(scene.occ[sl][sdf < 2.0] & bits)


def _clip_to_neighbours(scene: _Scene, lo, sdf: np.ndarray) -> np.ndarray | None:
    """A mitochondrion's sdf (on the box at lo) cut back where it runs into other mitochondria:
    max(sdf, 0.5 - distance to the nearest labelled voxel), so that its label ends on the voxels
    next to theirs (sharing faces) and its own membranes follow the contact.  None if, cut back,
    it shares no face with another mitochondrion."""
    sl = _slices(lo, np.asarray(lo) + sdf.shape)
    others = scene.mito_ids[sl] != 0
    # Only labelled voxels with sdf < 0.5 can move the cut surface or the membranes within ~4
    # voxels of it (deeper changes saturate); the distance is needed near them only.
    near = np.nonzero(others & (sdf < 0.5))
    if len(near[0]) == 0:
        return None
    a = np.maximum([int(i.min()) - 5 for i in near], 0)
    b = np.minimum([int(i.max()) + 6 for i in near], sdf.shape)
    sub = _slices(a, b)
    dist = ndi.distance_transform_edt(~others[sub]).astype(np.float32)
    clipped = sdf.copy()
    np.maximum(clipped[sub], np.float32(0.5) - dist, out=clipped[sub])
    if not np.any((clipped[sub] <= 0) & (dist <= 1.0)):
        return None
    return clipped


def _wave_noise(rng, coords: np.ndarray, freq: float, waves: int = 3) -> np.ndarray:
    """Smooth ~unit-std random field at points coords (n, 3): a sum of random plane waves of
    spatial frequency ~freq (radians per voxel)."""
    k = _random_unit(rng, waves) * freq * rng.uniform(0.7, 1.3, (waves, 1))
    phase = rng.uniform(0, 2 * np.pi, waves)
    return np.sin(coords @ k.T.astype(np.float32) + phase.astype(np.float32)).sum(axis=1) * np.float32(np.sqrt(2.0 / waves))


def _draw_mito(scene: _Scene, rng, tube, pts, arc, label: int) -> int:
    """Paint one mitochondrion (matrix, tilted cristae, double membrane) and label it; returns
    its voxel count in the volume."""
    lo, hi, sdf, nearest = tube
    sl = _slices(lo, hi)
    sel = np.nonzero(sdf < 1.5)
    d = sdf[sel]
    near = nearest[sel]
    depth = -d
    coords = np.stack(sel, -1).astype(np.float32) + lo
    period = rng.uniform(6.5, 10.0) * scene.scale
    tilt = np.tan(rng.uniform(0.0, 1.2))
    across = np.sum((coords - pts[near]) * _random_unit(rng), axis=1)
    wobble = _wave_noise(rng, coords, 0.35)
    phase = (arc[near] + tilt * across) / period + 0.18 * wobble
    across_crista = np.abs(phase - np.round(phase)) * period
    present = np.clip(depth - 2.2, 0.0, 1.0) * _sigmoid(4.0 * (wobble + 1.0))
    dens = np.full(d.shape, rng.uniform(*_MATRIX), np.float32)
    dens += _band(depth, 1.5, 0.45) * (0.35 - dens)  # intermembrane space
    dens += present * _band(across_crista, 0.0, 0.85) * (_CRISTA_SPACE - dens)
    dens = np.maximum(dens, 0.95 * _MEMBRANE * present * _band(across_crista, 1.5, 0.55))
    view = scene.density[sl]
    old = view[sel]
    new = old + _coverage(d) * (dens - old)
    new = np.maximum(new, _MEMBRANE * _band(d, -0.75, 0.7))
    new = np.maximum(new, 0.95 * _MEMBRANE * _band(d, -2.3, 0.7))
    view[sel] = new
    inside = d <= 0
    scene.mito_ids[sl][tuple(s[inside] for s in sel)] = label
    scene.occ[sl][tuple(s[d < _LABEL_MARGIN] for s in sel)] |= _OCC_MITO
    return int(inside.sum())


def _attach_mito(scene: _Scene, rng, skeletons: list, tries: int = 3):
    """Draw a mitochondrion pressed against an existing one (random partner, random point of
    its centre line, mostly running alongside it), cut back where they would overlap (see
    :func:`_clip_to_neighbours`); it appends its skeleton.  Returns (partner index, voxels) or
    None if no try fitted."""
    shape = np.asarray(scene.shape)
    for _ in range(tries):
        k = int(rng.integers(len(skeletons)))
        pts_a, radii_a = skeletons[k]
        inside = np.flatnonzero(np.all((pts_a >= 0) & (pts_a <= shape - 1), axis=1))
        if len(inside) == 0:
            continue
        i = int(inside[rng.integers(len(inside))])
        tangent = _unit(pts_a[min(i + 1, len(pts_a) - 1)] - pts_a[max(i - 1, 0)])
        side = _random_unit(rng)
        side = _unit(side - np.dot(side, tangent) * tangent)
        r0 = _mito_radius(rng, scene.scale)
        center = pts_a[i] + side * (radii_a[i] + rng.uniform(0.45, 0.75) * r0)
        if np.any(center < 0) or np.any(center > shape - 1):
            continue
        if rng.random() < 0.6:  # side by side, else at any angle
            direction = _unit(tangent * rng.choice([-1.0, 1.0]) + 0.5 * _random_unit(rng))
        else:
            direction = _random_unit(rng)
        skeleton = _mito_skeleton(rng, scene.occ, center, scene.scale, r0, direction, scene.mito_ids)
        if skeleton is None:
            continue
        pts, radii, arc = skeleton
        tube = _tube_sdf(pts, radii, scene.shape, 2.5)
        if tube is None or not _mito_is_free(scene, tube[0], tube[2], _OCC_NUC | _OCC_WALL | _OCC_OTHER):
            continue
        clipped = _clip_to_neighbours(scene, tube[0], tube[2])
        if clipped is None:
            continue
        skeletons.append((pts, radii))
        return k, _draw_mito(scene, rng, (tube[0], tube[1], clipped, tube[3]), pts, arc, len(skeletons))
    return None


def _draw_mitochondria(scene: _Scene, rng, clustered_fraction: float = 0.0) -> None:
    """Place mitochondria in free cytoplasm until ~4-8 % of the volume is mito: about
    `clustered_fraction` of them in clusters (each touching at least one other, see
    :func:`_attach_mito`), the others keeping >= 3 voxels off everything."""
    volume = float(np.prod(scene.shape))
    target = rng.uniform(0.045, 0.08) * volume
    typical = np.pi * (5.2 * scene.scale) ** 2 * 75.0 * scene.scale
    total = 0
    skeletons: list[tuple[np.ndarray, np.ndarray]] = []  # (centre points, radii) per label - 1
    clustered: set[int] = set()
    for _ in range(int(100 + 20 * target / typical)):
        if total >= target:
            break
        if skeletons and len(clustered) < clustered_fraction * (len(skeletons) + 1):
            attached = _attach_mito(scene, rng, skeletons)
            if attached is not None:
                clustered.update((attached[0], len(skeletons) - 1))
                total += attached[1]
                continue
        center = rng.uniform(0, np.asarray(scene.shape) - 1)
        if scene.occ[tuple(np.round(center).astype(int))]:
            continue
        skeleton = _mito_skeleton(rng, scene.occ, center, scene.scale)
        if skeleton is None:
            continue
        pts, radii, arc = skeleton
        tube = _tube_sdf(pts, radii, scene.shape, 2.5)
        if tube is None or not _mito_is_free(scene, tube[0], tube[2]):
            continue
        if not np.any(tube[2] <= 0):
            continue
        skeletons.append((pts, radii))
        total += _draw_mito(scene, rng, tube, pts, arc, len(skeletons))


# ---------------------------------------------------------------------------- distractors


def _blob_sdf(axes, center, radius: float, rot: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Approximate signed distance (voxels) to an ellipsoid of mean radius `radius`, axes
    radius * stretch (3,) along the rows of rot."""
    rho2 = sum((_affine(axes, center, r) / np.float32(radius * s)) ** 2 for r, s in zip(rot, stretch))
    return (np.sqrt(rho2) - 1.0) * np.float32(radius)


def _free_blob(scene: _Scene, rng, center, radius: float, elongation: float = 0.15):
    """Signed distance of a random ellipsoid at center on its box, if it (plus 1.5 voxels) touches
    no label or other distractor: (slices, sdf) or None."""
    box = _box(np.asarray(center) - 1.3 * radius - 3, np.asarray(center) + 1.3 * radius + 3, scene.shape)
    if box is None:
        return None
    sl = _slices(*box)
    stretch = 1.0 + rng.uniform(-elongation, elongation, 3)
    sdf = _blob_sdf(_axes(*box), center, radius, _random_rotation(rng), stretch)
    if np.any(scene.occ[sl][sdf < 1.5] & (_OCC_LABEL | _OCC_OTHER)):
        return None
    scene.occ[sl] |= np.where(sdf < 0.5, _OCC_OTHER, 0).astype(np.uint8)
    return sl, sdf


def _paint_body(scene: _Scene, sl, sdf, interior, membrane: float | None, soft: float = 1.0) -> None:
    """Blend `interior` (density, scalar or box array) inside sdf and draw an optional membrane."""
    view = scene.density[sl]
    view += _coverage(sdf, soft) * (interior - view)
    if membrane is not None:
        np.maximum(view, membrane * _band(sdf, -0.6), out=view)


def _draw_vesicle(scene: _Scene, rng, center, radius: float) -> None:
    """Small light vesicle with a dark rim (radius 1.5-4 voxels)."""
    blob = _free_blob(scene, rng, center, radius, 0.08)
    if blob is not None:
        _paint_body(scene, *blob, rng.uniform(0.1, 0.22), 0.85 * _MEMBRANE)


def _draw_droplet(scene: _Scene, rng, center) -> None:
    """Lipid droplet: very dark homogeneous ellipsoid without membrane (radius 3-10 voxels)."""
    blob = _free_blob(scene, rng, center, rng.uniform(3.0, 10.0) * scene.scale)
    if blob is not None:
        _paint_body(scene, *blob, rng.uniform(0.8, 0.92), None, soft=1.5)


def _draw_lysosome(scene: _Scene, rng, center) -> None:
    """Lysosome: single membrane, dark blotchy content with light specks (radius 4-9 voxels)."""
    blob = _free_blob(scene, rng, center, rng.uniform(4.0, 9.0) * scene.scale)
    if blob is not None:
        sl, sdf = blob
        content = 0.65 + 0.17 * np.tanh(_smooth_noise(rng, sdf.shape, 1.5) * 1.5)
        _paint_body(scene, sl, sdf, content.astype(np.float32), _MEMBRANE)


def _draw_peroxisome(scene: _Scene, rng, center) -> None:
    """Peroxisome: round, single membrane, homogeneous matrix as dark as mitochondria."""
    blob = _free_blob(scene, rng, center, rng.uniform(3.5, 6.0) * scene.scale, 0.1)
    if blob is not None:
        _paint_body(scene, *blob, rng.uniform(*_MATRIX), _MEMBRANE)


def _draw_er_tube(scene: _Scene, rng, center) -> None:
    """Smooth ER tubule (radius 1.3-2 voxels, pale lumen, dark membrane), clipped at labels."""
    r = rng.uniform(1.3, 2.0)
    pts = _random_curve(rng, center, _random_unit(rng), rng.uniform(20, 90) * scene.scale, 1.0, 0.9)
    tube = _tube_sdf(pts, np.full(len(pts), r), scene.shape, 1.5)
    if tube is None:
        return
    lo, hi, sdf, _ = tube
    sl = _slices(lo, hi)
    sdf = np.where(scene.occ[sl] & _OCC_LABEL, np.inf, sdf).astype(np.float32)
    _paint_body(scene, sl, sdf, rng.uniform(0.2, 0.3), 0.9 * _MEMBRANE)


def _draw_er_sheet(scene: _Scene, rng, center) -> None:
    """Curved flat ER cisterna: two dark membranes 3-6 voxels apart around a pale lumen, on an
    elliptic patch of radius 10-25 voxels; clipped at labels."""
    extent = rng.uniform(10.0, 25.0) * scene.scale
    box = _box(np.asarray(center) - extent - 4, np.asarray(center) + extent + 4, scene.shape)
    if box is None:
        return
    sl = _slices(*box)
    axes = _axes(*box)
    rot = _random_rotation(rng)
    u, v = (_affine(axes, center, r) for r in rot[:2])
    h = _affine(axes, center, rot[2]) + (rng.uniform(-0.03, 0.03) * u * u + rng.uniform(-0.03, 0.03) * v * v)
    disc = np.clip((1.0 - (u * u + (v * rng.uniform(1.0, 2.0)) ** 2) / extent**2) * 4.0, 0.0, 1.0)
    disc *= (scene.occ[sl] & _OCC_LABEL) == 0
    half = rng.uniform(1.8, 3.2)
    sdf = np.abs(h) - np.float32(half)
    view = scene.density[sl]
    view += disc * _coverage(sdf) * (np.float32(rng.uniform(0.2, 0.3)) - view)
    np.maximum(view, disc * 0.9 * _MEMBRANE * _band(sdf, -0.4), out=view)


def _scatter(rng, scene: _Scene, rate: float) -> np.ndarray:
    """Poisson number (mean rate * volume) of uniform random points in the volume, (n, 3)."""
    n = rng.poisson(rate * float(np.prod(scene.shape)))
    return rng.uniform(0, np.asarray(scene.shape) - 1, (n, 3))


def _draw_distractors(scene: _Scene, rng) -> None:
    """Unlabelled look-alikes: droplets, lysosomes, peroxisomes, ER, vesicles (clustered too)."""
    for c in _scatter(rng, scene, 1 / 2e5):
        _draw_droplet(scene, rng, c)
    for c in _scatter(rng, scene, 1 / 1.5e5):
        _draw_lysosome(scene, rng, c)
    for c in _scatter(rng, scene, 1 / 1.2e5):
        _draw_peroxisome(scene, rng, c)
    for c in _scatter(rng, scene, 1 / 4e5):
        _draw_er_sheet(scene, rng, c)
    for c in _scatter(rng, scene, 1 / 1.5e5):
        _draw_er_tube(scene, rng, c)
    for c in _scatter(rng, scene, 1 / 1.2e5):
        spread = rng.uniform(5, 14) * scene.scale
        for _ in range(int(rng.integers(3, 12))):
            _draw_vesicle(scene, rng, c + rng.normal(0, spread, 3), rng.uniform(1.5, 3.5) * scene.scale)
    for c in _scatter(rng, scene, 1 / 4e4):
        _draw_vesicle(scene, rng, c, rng.uniform(1.5, 4.0) * scene.scale)


def _add_specks(scene: _Scene, rng) -> None:
    """Ribosome-like dark specks: single voxels of extra density scattered everywhere (objects
    drawn later replace them with their own interior)."""
    flat = scene.density.reshape(-1)
    idx = rng.integers(0, flat.size, rng.poisson(flat.size / 90))
    flat[idx] += _SPECK


# ---------------------------------------------------------------------------- imaging


def _slice_drift(rng, nz: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice gain (nz,) around 1 and offset (nz,) in grey levels: slow drift plus jitter."""
    sigma = max(2.0, nz / 8.0)
    gain = 1.0 + 0.06 * _smooth_walk(rng, nz, sigma) + 0.012 * rng.standard_normal(nz)
    offset = 7.0 * _smooth_walk(rng, nz, sigma) + 1.5 * rng.standard_normal(nz)
    return gain.astype(np.float32), offset.astype(np.float32)


def _illumination(rng, ny: int, nx: int) -> np.ndarray:
    """Slow in-plane multiplicative illumination (ny, nx): a tilt plus a vignette, +-~10 %."""
    y = np.linspace(-1, 1, ny, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, nx, dtype=np.float32)[None, :]
    gy, gx = rng.uniform(-0.12, 0.12, 2)
    cy, cx = rng.uniform(-0.5, 0.5, 2)
    return (1.0 + gy * y + gx * x - rng.uniform(0.03, 0.1) * ((y - cy) ** 2 + (x - cx) ** 2)).astype(np.float32)


def _render(rng, density: np.ndarray) -> np.ndarray:
    """Image the density map (consumed) to uint8 grey levels: texture, blur, drift, noise."""
    density += _TEXTURE_STD * rng.standard_normal(density.shape, dtype=np.float32)
    density *= np.float32(-_CONTRAST)
    density += np.float32(_BRIGHT)
    img = ndi.gaussian_filter(density, _BLUR_SIGMA, truncate=3.0)
    del density
    gain, offset = _slice_drift(rng, img.shape[0])
    img *= gain[:, None, None]
    img += offset[:, None, None]
    img *= _illumination(rng, *img.shape[1:])[None]
    std = np.maximum(img, 0.0)
    std *= np.float32(_SHOT_GAIN)
    std += np.float32(_READ_STD**2)
    np.sqrt(std, out=std)
    std *= rng.standard_normal(img.shape, dtype=np.float32)
    img += std
    del std
    img += 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


# ---------------------------------------------------------------------------- entry point


def _one_component_ids(ids: np.ndarray) -> np.ndarray:
    """Instance ids made consecutive (1..N) with each id one 26-connected component: an object
    the volume's border cuts into pieces gets one id per piece (the largest keeps its place in
    the order).  Returns `ids` itself when nothing changes."""
    comps, n = cc3d.connected_components(ids, connectivity=26, return_N=True)
    present = np.unique(ids)
    if n == len(present) - (present[0] == 0) and (len(present) == 0 or present[-1] == n):
        return ids
    orig = np.zeros(n + 1, np.int64)
    orig[comps.reshape(-1)] = ids.reshape(-1)
    sizes = np.bincount(comps.reshape(-1), minlength=n + 1)
    order = np.lexsort((-sizes[1:], orig[1:])) + 1  # by original id, then largest piece first
    new = np.zeros(n + 1, np.uint32)
    new[order] = np.arange(1, n + 1, dtype=np.uint32)
    return new[comps]


def make_em_volume(shape: tuple[int, int, int], seed: int = 0, clustered_fraction: float = 0.4) -> SyntheticVolume:
    """Generate an EM-like volume of `shape` (Z, Y, X) voxels (~8 nm isotropic) with its
    nucleus / mitochondria labels and instance ids; deterministic in (shape, seed,
    clustered_fraction).  About `clustered_fraction` (0-1) of the mitochondria come in touching
    clusters and of the nuclei in touching pairs (0: every instance stands apart).  See the
    module docstring."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints (Z, Y, X), got {shape}")
    if not 0.0 <= clustered_fraction <= 1.0:
        raise ValueError(f"clustered_fraction must be in [0, 1], got {clustered_fraction}")
    rng = np.random.default_rng(seed)
    length = float(min(shape[1:]))
    scene = _Scene(np.empty(shape, np.float32), np.zeros(shape, np.uint32),
                   np.zeros(shape, np.uint32), np.zeros(shape, np.uint8),
                   float(np.clip(length / 96.0, 0.4, 1.0)))
    bend = 0.03 * length + 0.5
    gap = 6.0 * scene.scale + 3.0
    nuclei = _plan_nuclei(rng, shape, gap, clustered_fraction)
    _draw_cells(scene, rng, _plan_cells(rng, shape, nuclei, gap, bend))
    _add_specks(scene, rng)
    label = 0
    for nuc in nuclei:
        label += 1
        _draw_nucleus(scene, rng, nuc, label)
        if nuc.partner is not None:
            label += 1
            _draw_nucleus(scene, rng, nuc.partner, label, clip=nuc)
    _draw_mitochondria(scene, rng, clustered_fraction)
    _draw_distractors(scene, rng)
    image = _render(rng, scene.density)
    mito_ids = _one_component_ids(scene.mito_ids)
    nuc_ids = _one_component_ids(scene.nuc_ids)
    return SyntheticVolume(image=image, nuc=(nuc_ids > 0).astype(np.uint8), mito=(mito_ids > 0).astype(np.uint8),
                           mito_ids=mito_ids, nuc_ids=nuc_ids)
