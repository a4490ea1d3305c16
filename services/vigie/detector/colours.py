"""Colour science for the colour-query analytic: sRGB -> CIELAB, colour differences, named colours.

Conversions follow CIE 15:2004 *Colorimetry* (3rd ed.), section 8.2 (CIE 1976
L*a*b*), applied to sRGB as defined by IEC 61966-2-1:1999:

1. sRGB -> linear RGB (IEC 61966-2-1): ``c / 12.92`` for ``c <= 0.04045``,
   else ``((c + 0.055) / 1.055) ** 2.4``.
2. linear RGB -> XYZ (IEC 61966-2-1 matrix), D65 white, Y of the white = 1.
3. XYZ -> L*a*b* (CIE 15:2004, section 8.2) with the D65 white
   ``(Xn, Yn, Zn) = (0.95047, 1.0, 1.08883)``: ``L* = 116 f(Y/Yn) - 16``,
   ``a* = 500 (f(X/Xn) - f(Y/Yn))``, ``b* = 200 (f(Y/Yn) - f(Z/Zn))`` with
   ``f(t) = t^(1/3)`` for ``t > (24/116)^3``, else ``(841/108) t + 16/116``.
4. LCh: chroma ``C*ab = sqrt(a*^2 + b*^2)``, hue angle ``h_ab = atan2(b*, a*)`` in
   degrees, [0, 360) (CIE 15:2004, section 8.2).

Colour differences: CIE76 ``ΔE*ab`` (Euclidean distance in L*a*b*, CIE 15:2004,
section 8.2) and CIEDE2000 ``ΔE00`` (CIE 142-2001; implementation notes and test data of
G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 color-difference formula", Color
Research & Application 30(1), 2005), with ``kL = kC = kH = 1``.

Named colours are regions of LCh space (lightness and chroma bounds, a hue-angle
range that may wrap through 0), see :data:`NAMED_COLOURS`. They were set from the
LCh of the sRGB/CSS reference colours and checked on footage (a red car under an
overcast sky, wooden floors, brick, brown jackets): for instance sRGB red
``(255, 0, 0)`` has ``h = 40°``, orange ``(255, 165, 0)`` ``h = 74°``, so in CIELAB the
red/orange boundary lies near ``h = 42°`` (not at 15-30° as in HSV hue).

Every function is batched torch code, the same on CPU and CUDA, no per-pixel Python.
Per-frame use goes through :class:`ColourTable`: the exact conversion and the colour
tests are evaluated once on a grid of quantised sRGB colours (64 levels per channel,
step 4/255: the nearest grid colour is 0.5 ΔE00 away on average, at most 2.7 ΔE00 or
3.4 ΔE*ab for very dark colours), and each frame's pixels are looked up in it; the exact per-pixel conversion costs more than the whole
analytic's budget (about 1 ms per frame on one CPU thread).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

#: sRGB (linear) -> XYZ, D65 white, IEC 61966-2-1:1999 eq. 6.
SRGB_TO_XYZ = (
    (0.4124, 0.3576, 0.1805),
    (0.2126, 0.7152, 0.0722),
    (0.0193, 0.1192, 0.9505),
)
#: D65 reference white of CIE 15:2004 (normalised to Y = 1).
D65_WHITE = (0.95047, 1.0, 1.08883)

_EPS = (24.0 / 116.0) ** 3  # CIE 15:2004: threshold of the cube-root branch of f
_KAPPA = 841.0 / 108.0  # slope of the linear branch of f


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) of sRGB colours.

    Args:
        rgb: sRGB in [0, 1] with the channels on axis 1: ``(N, 3, h, w) float32``
            (a batch) or ``(N, 3)`` (a list of colours); values outside [0, 1] are clipped.

    Returns:
        Tensor of the same shape: ``L*`` in [0, 100], ``a*`` and ``b*`` roughly in
        [-128, 128], same dtype and device.

    Raises:
        ValueError: axis 1 does not have 3 channels.
    """
    if rgb.dim() < 2 or rgb.shape[1] != 3:
        raise ValueError(f"expected sRGB on axis 1 (N, 3, ...), got shape {tuple(rgb.shape)}")
    c = rgb.clamp(0.0, 1.0)
    lin = torch.where(c <= 0.04045, c * (1.0 / 12.92), ((c + 0.055) * (1.0 / 1.055)).pow(2.4))
    m = torch.tensor(SRGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device)
    m = m / torch.tensor(D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(3, 1)  # X/Xn, Y/Yn, Z/Zn at once
    r, g, b = lin.unbind(1)
    xyz = torch.stack([m[k, 0] * r + m[k, 1] * g + m[k, 2] * b for k in range(3)], 1)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS).pow(1.0 / 3.0), xyz * _KAPPA + 16.0 / 116.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), 1)


def srgb8_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIELAB of one 8-bit sRGB colour, e.g. ``(255, 0, 0) -> (53.2, 80.1, 67.2)``."""
    x = torch.tensor([[float(v) / 255.0 for v in rgb]], dtype=torch.float64)
    return tuple(float(v) for v in srgb_to_lab(x)[0])


def lch(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L*, C*ab, h_ab)`` of ``lab`` (channels on axis 1); hue in degrees, [0, 360)."""
    l, a, b = lab.unbind(1)
    return l, torch.hypot(a, b), torch.rad2deg(torch.atan2(b, a)).remainder(360.0)


def delta_e76(lab: torch.Tensor, ref: tuple[float, float, float]) -> torch.Tensor:
    """CIE76 ``ΔE*ab`` between ``lab`` ``(N, 3, ...)`` and one colour ``ref``; shape ``(N, ...)``."""
    l, a, b = lab.unbind(1)
    return ((l - ref[0]) ** 2 + (a - ref[1]) ** 2 + (b - ref[2]) ** 2).sqrt()


def delta_e2000(lab: torch.Tensor, ref: tuple[float, float, float]) -> torch.Tensor:
    """CIEDE2000 ``ΔE00`` between ``lab`` ``(N, 3, ...)`` and one colour ``ref`` (``kL = kC = kH = 1``).

    Follows equations (1)-(19) of Sharma, Wu & Dalal (2005), including their notes on
    the hue of neutral colours (``h' = 0`` when ``a' = b' = 0``) and on the mean hue.
    Returns a tensor of shape ``(N, ...)``, same dtype and device.
    """
    l1, a1, b1 = lab.unbind(1)
    l2, a2, b2 = (torch.as_tensor(v, dtype=lab.dtype, device=lab.device) for v in ref)
    c1, c2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    c_mean7 = ((c1 + c2) * 0.5) ** 7
    g = 0.5 * (1.0 - (c_mean7 / (c_mean7 + 25.0**7)).sqrt())
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)).remainder(360.0)
    h2p = torch.rad2deg(torch.atan2(b2.expand_as(a2p), a2p)).remainder(360.0)
    neutral = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = torch.where(dh > 180.0, dh - 360.0, torch.where(dh < -180.0, dh + 360.0, dh))
    dh = torch.where(neutral, torch.zeros_like(dh), dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2.0 * (c1p * c2p).sqrt() * torch.sin(torch.deg2rad(dh) * 0.5)
    l_mean, c_mean = (l1 + l2) * 0.5, (c1p + c2p) * 0.5
    h_sum = h1p + h2p
    h_mean = torch.where((h1p - h2p).abs() > 180.0,
                         torch.where(h_sum < 360.0, (h_sum + 360.0) * 0.5, (h_sum - 360.0) * 0.5), h_sum * 0.5)
    h_mean = torch.where(neutral, h_sum, h_mean)
    hr = torch.deg2rad(h_mean)
    t = (1.0 - 0.17 * torch.cos(hr - math.radians(30.0)) + 0.24 * torch.cos(2.0 * hr)
         + 0.32 * torch.cos(3.0 * hr + math.radians(6.0)) - 0.20 * torch.cos(4.0 * hr - math.radians(63.0)))
    d_theta = 30.0 * torch.exp(-(((h_mean - 275.0) / 25.0) ** 2))
    c_mean7p = c_mean**7
    r_c = 2.0 * (c_mean7p / (c_mean7p + 25.0**7)).sqrt()
    l50 = (l_mean - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / (20.0 + l50).sqrt()
    s_c = 1.0 + 0.045 * c_mean
    s_h = 1.0 + 0.015 * c_mean * t
    r_t = -torch.sin(torch.deg2rad(2.0 * d_theta)) * r_c
    tl, tc, th = d_l / s_l, d_c / s_c, d_h / s_h
    return (tl * tl + tc * tc + th * th + r_t * tc * th).clamp_min(0.0).sqrt()


@dataclass(frozen=True, slots=True)
class LChRegion:
    """A named colour as a region of CIELAB LCh space (D65).

    A colour belongs to the region when ``l_min <= L* <= l_max``,
    ``c_min <= C*ab <= c_max`` and its hue angle lies in ``[h_from, h_to]`` degrees,
    going counter-clockwise (the range wraps through 0 when ``h_from > h_to``);
    ``h_from = h_to = None`` means any hue (achromatic colours).
    """

    l_min: float
    l_max: float
    c_min: float
    c_max: float
    h_from: float | None = None
    h_to: float | None = None

    def contains(self, lab: torch.Tensor) -> torch.Tensor:
        """``(N, ...) bool``: which colours of ``lab`` ``(N, 3, ...)`` are in the region."""
        return self.contains_lch(*lch(lab))

    def contains_lch(self, l: torch.Tensor, c: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Like :meth:`contains`, from ``(L*, C*ab, h_ab)`` as returned by :func:`lch`."""
        ok = (l >= self.l_min) & (l <= self.l_max) & (c >= self.c_min) & (c <= self.c_max)
        if self.h_from is not None and self.h_to is not None:
            if self.h_from <= self.h_to:
                ok &= (h >= self.h_from) & (h <= self.h_to)
            else:  # wraps through 0 degrees
                ok &= (h >= self.h_from) | (h <= self.h_to)
        return ok


#: The operator's colour names as LCh regions (L* in [0, 100], C*ab, hue h_ab in degrees).
#: Reference hues (CSS/sRGB colours): crimson 25, red 40, dark orange 64, orange 73,
#: gold 91, yellow 103, green 136, cyan 196, blue and navy 306, purple and magenta 328,
#: pink (255, 192, 203) 8 with C* 24, saddle brown 57 with C* 49 and L* 38.
#: Chromatic names need enough chroma to be told from grey after video compression.
#: The bounds were checked on footage at the 160x120 working size: a red car under an
#: overcast sky reads L* 25-55, C* 30-55, h 0-30; a varnished wooden floor h 45-70 with
#: C* 30-50 and its dark skirting board L* 10-23; brown jackets C* < 30; a brick
#: building h 67-77, C* 14-32. Washed-out or dark maroon cars (C* 15-25) are *not* red
#: here: query a CIELAB value for them, at the price of matching brown and wood too.
NAMED_COLOURS: dict[str, LChRegion] = {
    # red: crimson/pink-red (345) through pure sRGB red (40) to 42; C* >= 30 keeps brown,
    # brick and skin out, h <= 42 keeps orange wood (h >= 45) out, L* >= 25 dark wood
    # trim. Light low-chroma reds are pink.
    "red": LChRegion(25.0, 80.0, 30.0, 200.0, 345.0, 42.0),
    # orange: between red and yellow, light enough not to be brown
    "orange": LChRegion(45.0, 90.0, 40.0, 200.0, 42.0, 80.0),
    # yellow: gold to lemon, light
    "yellow": LChRegion(55.0, 100.0, 35.0, 200.0, 80.0, 110.0),
    # green: yellow-green to teal
    "green": LChRegion(15.0, 95.0, 20.0, 200.0, 110.0, 190.0),
    # blue: cyan-blue (sky blue h ~ 240) to pure blue and navy (306)
    "blue": LChRegion(10.0, 90.0, 20.0, 200.0, 190.0, 310.0),
    # purple: violet to magenta
    "purple": LChRegion(10.0, 70.0, 20.0, 200.0, 310.0, 345.0),
    # pink: light reds and magentas of moderate chroma
    "pink": LChRegion(60.0, 95.0, 15.0, 200.0, 330.0, 30.0),
    # brown: dark orange to red-brown of moderate chroma (wood, leather, brick)
    "brown": LChRegion(15.0, 55.0, 12.0, 60.0, 25.0, 80.0),
    # achromatic colours: low chroma, told apart by lightness
    "white": LChRegion(85.0, 100.0, 0.0, 12.0),
    "grey": LChRegion(25.0, 85.0, 0.0, 10.0),
    "black": LChRegion(0.0, 25.0, 0.0, 15.0),
}


@functools.lru_cache(maxsize=2)
def quantised_lab(levels: int = 64) -> torch.Tensor:
    """CIELAB ``(levels**3, 3) float64`` of the quantised sRGB grid, index ``(r * L + g) * L + b``."""
    steps = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    r, g, b = torch.meshgrid(steps, steps, steps, indexing="ij")
    return srgb_to_lab(torch.stack((r.flatten(), g.flatten(), b.flatten()), 1))


class ColourTable:
    """Colour tests tabulated over quantised sRGB: one bit per test, looked up per pixel.

    Args:
        columns: up to 31 ``(levels**3,) bool`` tensors, the result of each test on
            :func:`quantised_lab` (see :meth:`from_tests`).
        device: where the table lives (the batches' device).
        levels: quantisation levels per sRGB channel.

    Raises:
        ValueError: more than 31 columns, ``levels`` outside [2, 256], or a column of the wrong size.
    """

    def __init__(self, columns: Sequence[torch.Tensor], device: torch.device | str = "cpu",
                 levels: int = 64) -> None:
        if len(columns) > 31:
            raise ValueError("at most 31 colour tests per table")
        if not 2 <= levels <= 256:
            raise ValueError("levels must be in [2, 256]")
        self.levels = levels
        bits = torch.zeros(levels**3, dtype=torch.int32)
        for k, column in enumerate(columns):
            if column.shape != bits.shape:
                raise ValueError(f"column {k} has shape {tuple(column.shape)}, expected {tuple(bits.shape)}")
            bits |= column.to(torch.int32) << k
        self.bits = bits.to(device)

    @classmethod
    def from_tests(cls, tests: Sequence[Callable[[torch.Tensor], torch.Tensor]], device: torch.device | str = "cpu",
                   levels: int = 64) -> "ColourTable":
        """Table of ``tests``, functions ``lab (M, 3) float64 -> (M,) bool`` (e.g.
        ``region.contains`` or ``lambda lab: delta_e2000(lab, ref) <= tol``)."""
        lab = quantised_lab(levels)
        return cls([test(lab) for test in tests], device, levels)

    def lookup(self, rgb: torch.Tensor) -> torch.Tensor:
        """Test bits ``(N, h, w) int32`` of ``rgb`` ``(N, 3, h, w) float32`` sRGB in [0, 1]
        (bit ``k`` set: test ``k`` passed), quantised to the nearest level."""
        n = self.levels
        q = (rgb * (n - 1) + 0.5).to(torch.int32)
        index = ((q[:, 0] * n + q[:, 1]) * n + q[:, 2]).clamp_(0, n**3 - 1)  # out of [0, 1]: clipped
        return self.bits.index_select(0, index.flatten()).view(index.shape)
