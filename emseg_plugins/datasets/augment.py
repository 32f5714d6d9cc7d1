"""Training-sample augmentation from ``AUGMENTOR``: MONAI dictionary transforms plus EM-specific ones.

Samples follow docs/schemas.md: ``image`` float32 (C, [Z,] Y, X) in [0, 1], ``label`` float32
(K, [Z,] Y, X) with NaN = unannotated, optional ``instance`` int64 (1, ...) and ``valid_mask`` float32
(1, ...). Every spatial transform moves all of them together: image bilinear, targets nearest (so
instance ids stay a subset of the original ids and NaN never spreads).

Outside-of-image areas (arbitrary rotations, elastic deformation, misalignment) hold no annotation:
there ``label`` becomes NaN, ``valid_mask`` 0 and ``instance`` 0 (background); the image is
reflected (MONAI ``padding_mode="reflection"``) or, for misalignment, edge-repeated. NaN, not a new
``valid_mask`` key, so that every sample of a batch keeps the same keys.

Anisotropy: 3D samples rotate (90-degree and arbitrary) and deform only in the YX plane unless
``AUGMENTOR.ISOTROPIC``; flips along Z are always allowed. 2.5D samples (C adjacent slices as
channels, targets of the centre slice) get the same 2D transform on every slice; FLIP also reverses
the slice order.

Determinism: ``augment(sample, rng)`` seeds the whole pipeline from ``rng`` (a numpy Generator), so a
sample is a pure function of the rng's seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    MapTransform,
    Rand2DElasticd,
    Rand3DElasticd,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    Randomizable,
    RandomizableTransform,
    RandRotate90d,
    RandRotated,
    RandScaleIntensityFixedMeand,
    RandShiftIntensityd,
)
from yacs.config import CfgNode as CN

from emseg_plugins.errors import ConfigError

TARGETS = ("label", "instance", "valid_mask")
KEYS = ("image", *TARGETS)
MODES = ("bilinear", "nearest", "nearest", "nearest")  # per KEYS
PADDING = ("reflection", "zeros", "zeros", "zeros")  # per KEYS; zero targets are turned into "unannotated"
_EXACT_FLOAT = 2**24  # float32 holds every integer id below this exactly (MONAI resamples in float32)

__all__ = ["Augment", "AugmentOptions", "Misalignmentd", "MissingSectiond", "MotionBlurd", "ReverseSlicesd"]


@dataclass(frozen=True)
class AugmentOptions:
    """What to augment; defaults give flips, 90-degree rotations and nothing else. Probabilities in [0, 1]."""

    flip: bool = True
    rotate90: bool = True
    intensity: float = 0.0  # max relative brightness/contrast change
    isotropic: bool = False
    rotate_p: float = 0.0
    rotate_max_angle: float = 45.0  # degrees
    elastic_p: float = 0.0
    elastic_spacing: int = 32  # voxels
    elastic_magnitude: tuple[float, float] = (1.0, 3.0)  # voxels
    gamma_p: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_p: float = 0.0
    noise_std: float = 0.03
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.5, 1.5)  # voxels
    missing_p: float = 0.0
    missing_sections: int = 1
    missing_fill: str = "zero"  # zero | mean
    misalign_p: float = 0.0
    misalign_displacement: int = 8  # voxels
    misalign_slip_ratio: float = 0.5
    motion_p: float = 0.0
    motion_sections: int = 2
    motion_kernel: int = 9  # voxels

    @classmethod
    def from_cfg(cls, cfg: CN) -> AugmentOptions:
        """The ``AUGMENTOR`` node, checked; :class:`ConfigError` names the key and the rule."""
        a = cfg.AUGMENTOR
        options = cls(
            flip=a.FLIP, rotate90=a.ROTATE90, intensity=a.INTENSITY, isotropic=a.ISOTROPIC,
            rotate_p=a.ROTATE.P, rotate_max_angle=a.ROTATE.MAX_ANGLE,
            elastic_p=a.ELASTIC.P, elastic_spacing=a.ELASTIC.SPACING, elastic_magnitude=_pair(a.ELASTIC.MAGNITUDE, "AUGMENTOR.ELASTIC.MAGNITUDE"),
            gamma_p=a.GAMMA.P, gamma_range=_pair(a.GAMMA.RANGE, "AUGMENTOR.GAMMA.RANGE"),
            noise_p=a.NOISE.P, noise_std=a.NOISE.STD,
            blur_p=a.BLUR.P, blur_sigma=_pair(a.BLUR.SIGMA, "AUGMENTOR.BLUR.SIGMA"),
            missing_p=a.MISSINGSECTION.P, missing_sections=a.MISSINGSECTION.NUM_SECTIONS, missing_fill=a.MISSINGSECTION.FILL,
            misalign_p=a.MISALIGNMENT.P, misalign_displacement=a.MISALIGNMENT.DISPLACEMENT,
            misalign_slip_ratio=a.MISALIGNMENT.SLIP_RATIO,
            motion_p=a.MOTIONBLUR.P, motion_sections=a.MOTIONBLUR.SECTIONS, motion_kernel=a.MOTIONBLUR.KERNEL_SIZE,
        )
        options.check()
        return options

    def check(self) -> None:
        for field, key in _PROBABILITIES.items():
            value = getattr(self, field)
            if not 0 <= value <= 1:
                raise ConfigError(f"config: {key} = {value} must be a probability in [0, 1]")
        rules = [
            (self.intensity >= 0, "AUGMENTOR.INTENSITY", self.intensity, ">= 0"),
            (0 <= self.rotate_max_angle <= 180, "AUGMENTOR.ROTATE.MAX_ANGLE", self.rotate_max_angle, "in [0, 180] degrees"),
            (self.elastic_spacing >= 2, "AUGMENTOR.ELASTIC.SPACING", self.elastic_spacing, "at least 2 voxels"),
            (0 <= self.elastic_magnitude[0] <= self.elastic_magnitude[1], "AUGMENTOR.ELASTIC.MAGNITUDE",
             list(self.elastic_magnitude), "[low, high] voxels with 0 <= low <= high"),
            (0 < self.gamma_range[0] <= self.gamma_range[1], "AUGMENTOR.GAMMA.RANGE", list(self.gamma_range), "[low, high] with 0 < low <= high"),
            (self.noise_std >= 0, "AUGMENTOR.NOISE.STD", self.noise_std, ">= 0"),
            (0 < self.blur_sigma[0] <= self.blur_sigma[1], "AUGMENTOR.BLUR.SIGMA", list(self.blur_sigma), "[low, high] voxels with 0 < low <= high"),
            (self.missing_sections >= 1, "AUGMENTOR.MISSINGSECTION.NUM_SECTIONS", self.missing_sections, "at least 1"),
            (self.missing_fill in ("zero", "mean"), "AUGMENTOR.MISSINGSECTION.FILL", self.missing_fill, "'zero' or 'mean'"),
            (self.misalign_displacement >= 1, "AUGMENTOR.MISALIGNMENT.DISPLACEMENT", self.misalign_displacement, "at least 1 voxel"),
            (0 <= self.misalign_slip_ratio <= 1, "AUGMENTOR.MISALIGNMENT.SLIP_RATIO", self.misalign_slip_ratio, "in [0, 1]"),
            (self.motion_sections >= 1, "AUGMENTOR.MOTIONBLUR.SECTIONS", self.motion_sections, "at least 1"),
            (self.motion_kernel >= 3 and self.motion_kernel % 2 == 1, "AUGMENTOR.MOTIONBLUR.KERNEL_SIZE", self.motion_kernel,
             "an odd number >= 3 (voxels)"),
        ]
        for ok, key, value, rule in rules:
            if not ok:
                raise ConfigError(f"config: {key} = {value!r} must be {rule}")


_PROBABILITIES = {
    "rotate_p": "AUGMENTOR.ROTATE.P", "elastic_p": "AUGMENTOR.ELASTIC.P", "gamma_p": "AUGMENTOR.GAMMA.P",
    "noise_p": "AUGMENTOR.NOISE.P", "blur_p": "AUGMENTOR.BLUR.P", "missing_p": "AUGMENTOR.MISSINGSECTION.P",
    "misalign_p": "AUGMENTOR.MISALIGNMENT.P", "motion_p": "AUGMENTOR.MOTIONBLUR.P",
}


def _pair(values, key: str) -> tuple[float, float]:
    if len(values) != 2:
        raise ConfigError(f"config: {key} = {list(values)} must be two numbers [low, high]")
    return float(values[0]), float(values[1])


class Augment:
    """``augment(sample, rng) -> sample``: the pipeline of :func:`build_pipeline`, seeded from ``rng``.

    ``Augment(flip, rotate90, intensity, **more)`` takes :class:`AugmentOptions` fields; the MONAI
    pipeline is built on first use for each sample layout (spatial shape and channel count).
    """

    def __init__(self, flip: bool = True, rotate90: bool = True, intensity: float = 0.0, **more):
        self.options = AugmentOptions(flip, rotate90, intensity, **more)
        self.options.check()
        self._pipelines: dict[tuple[int, ...], Compose] = {}

    @classmethod
    def from_cfg(cls, cfg: CN) -> Augment | None:
        """The ``AUGMENTOR`` pipeline, or None when ``AUGMENTOR.ENABLED`` is false."""
        return cls(**asdict(AugmentOptions.from_cfg(cfg))) if cfg.AUGMENTOR.ENABLED else None

    def __getstate__(self) -> dict:  # spawn workers rebuild the pipelines themselves
        return {"options": self.options, "_pipelines": {}}

    def __call__(self, sample: dict[str, torch.Tensor], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        image = sample["image"]
        layout = tuple(image.shape)
        if layout not in self._pipelines:
            self._pipelines[layout] = build_pipeline(self.options, image.ndim - 1, image.shape[1:], image.shape[0])
        pipeline = self._pipelines[layout]
        state = np.random.RandomState(int(rng.integers(2**31)))  # one stream drawn in order: cheaper than one per transform
        for transform in pipeline.transforms:
            if isinstance(transform, Randomizable):
                transform.set_random_state(state=state)
        data, restore = _prepare(sample)
        tracking = get_track_meta()
        set_track_meta(False)  # plain tensors: MetaTensor bookkeeping would cost more than the transforms
        try:
            data = pipeline(data)
        finally:
            set_track_meta(tracking)
        return _finish(data, sample, restore)


def build_pipeline(options: AugmentOptions, dims: int, spatial: tuple[int, ...], channels: int) -> Compose:
    """The MONAI ``Compose`` for samples of ``dims`` spatial dims, ``spatial`` shape ([Z,] Y, X), ``channels`` image channels."""
    o = options
    keys = list(KEYS)
    y, x = dims - 2, dims - 1  # spatial axes (MONAI counts without the channel axis)
    planar = dims == 2 or not o.isotropic  # spatial transforms only in YX
    t: list = []
    if o.flip:
        t += [RandFlipd(keys, prob=0.5, spatial_axis=axis, allow_missing_keys=True) for axis in range(dims)]
        if dims == 2 and channels > 1:
            t.append(ReverseSlicesd("image", prob=0.5))  # 2.5D: Z flip of the input slices (centre stays)
    if o.rotate90:
        planes = [(y, x)] if planar else [(0, 1), (0, 2), (1, 2)]
        # prob 0.75 with k in {1, 2, 3}: k uniform in {0, 1, 2, 3}; non-square planes would change shape
        t += [RandRotate90d(keys, prob=0.75, max_k=3, spatial_axes=p, allow_missing_keys=True) for p in planes
              if spatial[p[0]] == spatial[p[1]]]
    if o.rotate_p > 0:
        angle = math.radians(o.rotate_max_angle)
        ranges = {"range_x": angle} if planar else {"range_x": angle, "range_y": angle, "range_z": angle}
        # in 3D MONAI's range_x turns the YX plane (about Z)
        t.append(RandRotated(keys, prob=o.rotate_p, mode=MODES, padding_mode=PADDING, allow_missing_keys=True, **ranges))
    if o.elastic_p > 0:
        if planar:
            elastic = Rand2DElasticd(keys, spacing=o.elastic_spacing, magnitude_range=o.elastic_magnitude, prob=o.elastic_p,
                                     mode=MODES, padding_mode=PADDING, allow_missing_keys=True)
            t.append(elastic if dims == 2 else InPlaned(elastic))
        else:
            sigma = o.elastic_spacing / 4  # Rand3DElastic smooths a uniform [-1, 1] field with this sigma ...
            gain = math.sqrt(3) * (2 * math.sqrt(math.pi) * sigma) ** 1.5  # ... which shrinks its std by 1 / gain
            t.append(Rand3DElasticd(keys, sigma_range=(sigma, sigma), magnitude_range=tuple(m * gain for m in o.elastic_magnitude),
                                    prob=o.elastic_p, mode=MODES, padding_mode=PADDING, allow_missing_keys=True))
    if o.misalign_p > 0:
        t.append(Misalignmentd(keys, prob=o.misalign_p, displacement=o.misalign_displacement, slip_ratio=o.misalign_slip_ratio,
                               allow_missing_keys=True))
    if o.missing_p > 0:
        t.append(MissingSectiond("image", prob=o.missing_p, num_sections=o.missing_sections, fill=o.missing_fill))
    if o.motion_p > 0:
        t.append(MotionBlurd("image", prob=o.motion_p, sections=o.motion_sections, kernel_size=o.motion_kernel))
    if o.intensity > 0:
        t.append(RandScaleIntensityFixedMeand("image", factors=o.intensity, prob=1.0))  # contrast about the mean
        t.append(RandShiftIntensityd("image", offsets=o.intensity / 2, prob=1.0))  # brightness
    if o.gamma_p > 0:
        t.append(RandAdjustContrastd("image", prob=o.gamma_p, gamma=o.gamma_range))
    if o.blur_p > 0:
        # MONAI's sigma_x, sigma_y, sigma_z are the 1st, 2nd, 3rd spatial axes: (Y, X) in 2D, (Z, Y, X) in 3D
        sigmas = [o.blur_sigma] * dims
        if dims == 3 and planar:
            sigmas[0] = (1e-3, 1e-3)  # ~no blur across anisotropic Z
        t.append(RandGaussianSmoothd("image", **dict(zip(("sigma_x", "sigma_y", "sigma_z"), sigmas)), prob=o.blur_p))
    if o.noise_p > 0:
        t.append(RandGaussianNoised("image", prob=o.noise_p, std=o.noise_std))
    return Compose(t)


def _prepare(sample: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Targets made safe to resample: label + 1 (so 0 marks padding), large instance ids ranked below 2**24."""
    data = dict(sample)
    restore: dict = {}
    data["label"] = sample["label"] + 1
    instance = sample.get("instance")
    if instance is not None and int(instance.max()) >= _EXACT_FLOAT:
        ids, ranks = torch.unique(instance, return_inverse=True)  # ids[0] is the smallest (0 = background if present)
        data["instance"], restore["ids"] = ranks.reshape(instance.shape), ids
    return data, restore


def _finish(data: dict, sample: dict[str, torch.Tensor], restore: dict) -> dict[str, torch.Tensor]:
    """Plain contiguous tensors with the input dtypes; padding turned into "unannotated"."""
    out = {k: torch.as_tensor(v).as_subclass(torch.Tensor) for k, v in data.items()}
    label = out["label"].float()
    label[label == 0] = float("nan")  # zero padding of (label + 1): outside the source image
    out["label"] = label - 1
    out["image"] = out["image"].float().clamp_(0, 1)
    if "instance" in out:
        instance = out["instance"].round().long()
        out["instance"] = restore["ids"][instance] if "ids" in restore else instance
    if "valid_mask" in out:
        out["valid_mask"] = out["valid_mask"].float()
    return {k: v.contiguous() for k, v in out.items() if k in sample}


class InPlaned(Randomizable):
    """Runs a 2D dictionary transform on 3D samples, the same on every Z slice: (C, Z, Y, X) <-> (C * Z, Y, X).

    Written by hand because MONAI's 3D elastic deformation also moves voxels along Z, which an
    anisotropic stack must not.
    """

    def __init__(self, transform):
        self.transform = transform

    def set_random_state(self, seed=None, state=None):
        self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.transform.randomize(data)

    def __call__(self, data: dict) -> dict:
        shapes = {k: data[k].shape for k in self.transform.keys if k in data}
        folded = dict(data)
        for k, shape in shapes.items():
            folded[k] = data[k].reshape(shape[0] * shape[1], *shape[2:])
        out = self.transform(folded)
        for k, shape in shapes.items():
            out[k] = out[k].reshape(shape)
        return out


class _RandSections(RandomizableTransform, MapTransform):
    """Base of the EM transforms: sections are Z slices (3D, dim 1) or input slices (2.5D channels, dim 0)."""

    def __init__(self, keys: KeysCollection, prob: float, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)

    @staticmethod
    def section_axis(image: torch.Tensor) -> int:
        return 1 if image.ndim == 4 else 0


class _EditSections(_RandSections):
    """Sections drawn once per sample (``randomize_sections`` on the first key sets ``self.sections``),
    then edited in place in a copy of every key's array (``edit``: sections-first view)."""

    sections: list[int]

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        first = next(iter(self.key_iterator(d)), None)
        if first is None:
            return d
        self.randomize_sections(d[first])
        if not self.sections:
            return d
        for key in self.key_iterator(d):
            image = d[key].clone()
            self.edit(image.movedim(self.section_axis(image), 0), image)
            d[key] = image
        return d

    def randomize_sections(self, image: torch.Tensor) -> None:
        raise NotImplementedError

    def edit(self, view: torch.Tensor, image: torch.Tensor) -> None:
        """Change ``view[self.sections]`` in place (``view``: ``image`` with the section axis first)."""
        raise NotImplementedError


class ReverseSlicesd(_RandSections):
    """2.5D: reverse the order of the input slices (a flip along Z; the centre slice and its targets stay)."""

    def __call__(self, data: dict) -> dict:
        self.randomize(None)
        if not self._do_transform:
            return data
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = d[key].flip(0)
        return d


class MissingSectiond(_EditSections):
    """EM missing sections: ``num_sections`` random sections of the image set to 0 (``fill="zero"``) or its mean.

    3D: any Z slice (targets are kept: the model must bridge the gap). 2.5D: any input slice but the
    centre one; 2D with one slice: nothing (the only section cannot go missing).
    """

    def __init__(self, keys: KeysCollection = "image", prob: float = 0.1, num_sections: int = 1, fill: str = "zero",
                 allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.num_sections, self.fill = num_sections, fill
        self.sections: list[int] = []

    def randomize_sections(self, image: torch.Tensor) -> None:
        self.randomize(None)
        axis = self.section_axis(image)
        n = image.shape[axis]
        candidates = [i for i in range(n) if axis == 1 or i != n // 2]
        if not self._do_transform or not candidates:
            self.sections = []
            return
        count = min(self.num_sections, max(len(candidates) - (axis == 1), 1))  # 3D: keep at least one slice
        self.sections = sorted(int(i) for i in self.R.choice(candidates, size=count, replace=False))

    def edit(self, view: torch.Tensor, image: torch.Tensor) -> None:
        view[self.sections] = 0.0 if self.fill == "zero" else float(image.mean())


class Misalignmentd(_RandSections):
    """EM misalignment (as PyTC's MisAlignment): the sections from a random Z on shift by (dy, dx) voxels in YX.

    3D: every key moves (sections ``[z, Z)``, or only section ``z`` with probability ``slip_ratio``);
    the strip uncovered by the shift repeats the image's edge and holds no annotation (label NaN,
    valid_mask 0, instance 0). 2.5D: the input slices on the far side of a random split from the centre
    slice shift, the centre slice and the targets stay. |dy|, |dx| <= ``displacement``, not both 0.
    """

    def __init__(self, keys: KeysCollection, prob: float = 0.1, displacement: int = 8, slip_ratio: float = 0.5,
                 allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.displacement, self.slip_ratio = displacement, slip_ratio
        self.sections: slice | None = None
        self.shift = (0, 0)

    def randomize_sections(self, image: torch.Tensor) -> None:
        self.randomize(None)
        axis = self.section_axis(image)
        n = image.shape[axis]
        self.sections = None
        if not self._do_transform or n < 2:
            return
        split = int(self.R.randint(1, n))  # sections [0, split) and [split, n)
        if self.R.rand() < self.slip_ratio:
            moved = slice(split, split + 1)
        else:
            moved = slice(split, n)
        if axis == 0 and moved.start <= n // 2 < moved.stop:  # 2.5D: never move the centre slice
            moved = slice(0, split)
        shift = (0, 0)
        while shift == (0, 0):
            shift = tuple(int(v) for v in self.R.randint(-self.displacement, self.displacement + 1, size=2))
        self.sections, self.shift = moved, shift

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        self.randomize_sections(d["image"])
        if self.sections is None:
            return d
        spatial_3d = d["image"].ndim == 4
        for key in self.key_iterator(d):
            if not spatial_3d and key != "image":
                continue  # 2.5D targets belong to the centre slice, which does not move
            d[key] = self._shift(d[key], key, spatial_3d)
        return d

    def _shift(self, array: torch.Tensor, key: str, spatial_3d: bool) -> torch.Tensor:
        out = array.clone()
        moved = out[:, self.sections] if spatial_3d else out[self.sections]
        source = array[:, self.sections] if spatial_3d else array[self.sections]
        ny, nx = array.shape[-2:]
        ys, xs = torch.arange(ny) - self.shift[0], torch.arange(nx) - self.shift[1]
        moved[...] = source[..., ys.clamp(0, ny - 1)[:, None], xs.clamp(0, nx - 1)[None, :]]  # edge-repeat
        if key != "image":
            outside = ((ys < 0) | (ys >= ny))[:, None] | ((xs < 0) | (xs >= nx))[None, :]
            moved[..., outside] = 0  # label: 0 of (label + 1) = unannotated; valid_mask 0; instance 0
        return out


class MotionBlurd(_EditSections):
    """EM motion blur: up to ``sections`` random sections blurred along a random direction (line kernel of
    ``kernel_size`` voxels); image only. 2D: the slice itself (2.5D: any input slices).

    Written by hand: MONAI has no motion blur (PyTC uses OpenCV's filter2D with the same kernel).
    """

    def __init__(self, keys: KeysCollection = "image", prob: float = 0.1, sections: int = 2, kernel_size: int = 9,
                 allow_missing_keys: bool = False):
        super().__init__(keys, prob, allow_missing_keys)
        self.max_sections, self.kernel_size = sections, kernel_size
        self.sections: list[int] = []
        self.angle = 0.0

    def randomize_sections(self, image: torch.Tensor) -> None:
        self.randomize(None)
        n = image.shape[self.section_axis(image)]
        self.sections = []
        if self._do_transform:
            count = int(self.R.randint(1, min(self.max_sections, n) + 1))
            self.sections = sorted(int(i) for i in self.R.choice(n, size=count, replace=False))
            self.angle = float(self.R.uniform(0, math.pi))

    def edit(self, view: torch.Tensor, image: torch.Tensor) -> None:
        kernel, pad = line_kernel(self.kernel_size, self.angle)[None, None], self.kernel_size // 2
        planes = view[self.sections].reshape(-1, 1, *image.shape[-2:]).float()
        blurred = F.conv2d(F.pad(planes, (pad, pad, pad, pad), mode="replicate"), kernel)
        view[self.sections] = blurred.reshape(view[self.sections].shape).to(image.dtype)


def line_kernel(size: int, angle: float) -> torch.Tensor:
    """(size, size) float32 kernel summing to 1: a centred line of ``size`` voxels at ``angle`` radians from X."""
    kernel = torch.zeros(size, size)
    c = size // 2
    for t in np.linspace(-c, c, 4 * size):
        kernel[round(c - t * math.sin(angle)), round(c + t * math.cos(angle))] = 1.0
    return kernel / kernel.sum()
