"""Labelled synthetic video with exactly known motion.

``panning_clip`` renders a street-like scene (sky, buildings, trees, road, pavement, poles, cars) with
per-class textures on a canvas larger than the frame, and moves a camera window across it at a constant
velocity. Because the motion is a pure translation, the displacement from every pixel of frame ``t`` to the
keyframe (frame 0) is exactly ``t * velocity``; that makes the clip a ground truth for motion accumulation
and warping, and a small labelled input for demos and tests.

``driving_clip`` drives a pinhole camera down a procedural street in perspective (``DrivingScene``): road,
pavements, buildings, trees, poles, signs, fences, parked and moving cars, pedestrians, cyclists, sky. Every
scene element is a textured plane with a known (possibly moving) pose, so each pixel's displacement to frame 0
is computed analytically, with a mask of the pixels whose scene point is visible in frame 0.
Class ids follow ``arseg_ros.labels.CAMVID``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import CAMVID

logger = logging.getLogger(__name__)

_ID = {c.name: i for i, c in enumerate(CAMVID.classes)}


@dataclass
class SyntheticClip:
    """A labelled synthetic clip with the per-pixel displacement of every frame to frame 0.

    ``frames``: ``(T, H, W, 3)`` uint8 RGB. ``labels``: ``(T, H, W)`` uint8 CamVid class ids.
    ``displacement``: ``(T, 2, H, W)`` float32, pixels from each pixel of frame t to its position in frame 0
    (``(dx, dy)``, backward-warp convention of ``arseg_ros.model.creff``). ``valid``: ``(T, H, W)`` bool, pixels
    whose scene point is visible in frame 0 (``None``: every pixel).
    """

    frames: np.ndarray
    labels: np.ndarray
    displacement: np.ndarray
    valid: np.ndarray | None = None

    def motion_between(self, t: int, r: int, x: np.ndarray, y: np.ndarray, iterations: int = 40) -> np.ndarray:
        """``(2, *x.shape)`` float32 pixels: the exact motion vector from ``(x, y)`` in frame ``t`` to frame ``r``.

        It takes the positions ``(x, y)`` (pixels) of frame ``t`` to the same scene points in frame ``r``, i.e. what an
        ideal encoder would send for a block at ``(x, y)`` predicting from ``r``. It goes through frame 0: ``D_t`` takes
        the point to frame 0, and ``D_r`` is inverted there by fixed-point iteration, so it holds where both frames see
        the point in frame 0.
        """
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        target = np.stack([x, y]) + _bilinear(self.displacement[t], x, y)
        position = np.stack([x, y])
        for _ in range(iterations if r else 1):
            position = target - (_bilinear(self.displacement[r], position[0], position[1]) if r else 0.0)
        return (position - np.stack([x, y])).astype(np.float32)


def _bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(C, *x.shape)``: ``field`` ``(C, H, W)`` sampled bilinearly at pixel positions ``(x, y)``.

    Positions are clamped to the image (``grid_sample`` with ``align_corners=True``: pixel centres at integer
    positions).
    """
    h, w = field.shape[1:]
    grid = np.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], axis=-1).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(
        torch.from_numpy(np.ascontiguousarray(field, np.float32))[None],
        torch.from_numpy(grid.astype(np.float32)),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return sampled[0, :, 0].numpy().reshape(field.shape[0], *x.shape)


def _texture(rng: np.random.Generator, h: int, w: int, base: tuple[int, int, int], amount: float) -> np.ndarray:
    """``(h, w, 3)`` float noise texture around an RGB base colour: smooth blotches plus fine grain."""
    coarse = rng.standard_normal((max(1, h // 16), max(1, w // 16), 1)).astype(np.float32)
    coarse_t = torch.from_numpy(coarse).permute(2, 0, 1)[None]
    smooth = F.interpolate(coarse_t, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()
    grain = rng.standard_normal((h, w)).astype(np.float32)
    shade = amount * (0.7 * smooth + 0.3 * grain)
    return np.clip(np.asarray(base, np.float32)[None, None] * (1.0 + shade[..., None]), 0, 255)


def _paint(canvas: np.ndarray, labels: np.ndarray, mask: np.ndarray, texture: np.ndarray, class_name: str) -> None:
    canvas[mask] = texture[mask]
    labels[mask] = _ID[class_name]


def render_scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a street scene canvas and its labels.

    Returns ``(height, width, 3)`` float32 RGB in 0..255 and ``(height, width)`` uint8 labels.
    """
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.float32)
    labels = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    horizon = int(height * rng.uniform(0.35, 0.5))

    def paint(mask: np.ndarray, name: str, base: tuple[int, int, int], amount: float = 0.15) -> None:
        _paint(canvas, labels, mask, _texture(rng, height, width, base, amount), name)

    paint(np.ones_like(labels, bool), "Sky", (150, 180, 215), 0.08)
    x = 0
    while x < width:
        bw = int(rng.integers(width // 12 + 8, width // 5 + 16))
        top = int(rng.integers(height // 10, horizon - 4)) if horizon > height // 10 + 4 else 0
        kind = rng.random()
        region = (xx >= x) & (xx < x + bw) & (yy >= top) & (yy < horizon)
        if kind < 0.7:
            shade = tuple(int(v) for v in rng.integers(90, 200, 3))
            paint(region, "Building", shade, 0.2)
            windows = region & ((xx - x) % 14 < 6) & ((yy - top) % 18 < 8) & (yy > top + 4)
            paint(windows, "Building", (40, 50, 70), 0.1)
        else:
            crown = region & (((xx - x - bw / 2) / (bw / 2)) ** 2 + ((yy - horizon) / (horizon - top + 1)) ** 2 < 1.0)
            paint(crown, "Tree", (60, 110, 40), 0.35)
        x += bw
    ground = yy >= horizon
    paint(ground, "Pavement", (170, 160, 150), 0.12)
    road = ground & (yy >= horizon + (height - horizon) // 5)
    paint(road, "Road", (95, 90, 100), 0.1)
    marking = road & (np.abs(yy - (horizon + height) // 2 - 3) < 2) & ((xx // 24) % 2 == 0)
    paint(marking, "Road", (235, 235, 235), 0.02)
    for _ in range(max(1, width // 120)):
        px = int(rng.integers(0, width))
        pole = (np.abs(xx - px) < 2) & (yy > horizon - height // 4) & (yy < horizon + (height - horizon) // 5)
        paint(pole, "Pole", (200, 200, 170), 0.05)
    for _ in range(max(1, width // 100)):
        cw, ch = int(rng.integers(40, 90)), int(rng.integers(20, 40))
        cx = int(rng.integers(0, max(1, width - cw)))
        cy = int(
            rng.integers(horizon + (height - horizon) // 5, max(horizon + (height - horizon) // 5 + 1, height - ch))
        )
        body = (xx >= cx) & (xx < cx + cw) & (yy >= cy) & (yy < cy + ch)
        paint(body, "Car", tuple(int(v) for v in rng.integers(30, 230, 3)), 0.1)
    return canvas, labels


def panning_clip(
    width: int,
    height: int,
    num_frames: int,
    velocity: tuple[float, float] = (3.0, 0.0),
    seed: int = 0,
) -> SyntheticClip:
    """Render a clip of ``num_frames`` frames whose camera pans ``velocity = (vx, vy)`` pixels per frame.

    Frame ``t`` shows the canvas window whose top-left corner is ``origin + t * velocity`` (sub-pixel
    velocities are rendered by bilinear sampling of the canvas; labels by nearest sampling).
    """
    if width < 8 or height < 8 or num_frames < 1:
        raise ValueError(f"need width, height >= 8 and at least one frame, got {width}x{height}x{num_frames}")
    vx, vy = velocity
    margin_x = int(np.ceil(abs(vx) * (num_frames - 1))) + 2
    margin_y = int(np.ceil(abs(vy) * (num_frames - 1))) + 2
    canvas, canvas_labels = render_scene(height + 2 * margin_y, width + 2 * margin_x, seed)
    ox = margin_x - vx * (num_frames - 1) / 2
    oy = margin_y - vy * (num_frames - 1) / 2
    image = torch.from_numpy(canvas).permute(2, 0, 1)[None]
    lab = torch.from_numpy(canvas_labels.astype(np.float32))[None, None]
    ch, cw = canvas.shape[:2]
    ys = torch.arange(height, dtype=torch.float32).view(height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, width)
    frames, labels = [], []
    for t in range(num_frames):
        gx = (2 * (xs + ox + t * vx) + 1) / cw - 1
        gy = (2 * (ys + oy + t * vy) + 1) / ch - 1
        grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)[None]
        frames.append(F.grid_sample(image, grid, mode="bilinear", align_corners=False)[0].permute(1, 2, 0))
        labels.append(F.grid_sample(lab, grid, mode="nearest", align_corners=False)[0, 0])
    steps = np.arange(num_frames, dtype=np.float32).reshape(num_frames, 1, 1, 1)
    displacement = np.broadcast_to(
        steps * np.array([vx, vy], np.float32).reshape(1, 2, 1, 1), (num_frames, 2, height, width)
    )
    return SyntheticClip(
        frames=np.clip(torch.stack(frames).numpy() + 0.5, 0, 255).astype(np.uint8),
        labels=torch.stack(labels).numpy().astype(np.uint8),
        displacement=np.ascontiguousarray(displacement),
    )


# Driving scene: a street in perspective seen from a moving car.
#
# World axes: x right, y down, z along the street, in metres; the road surface is the plane y = _CAMERA_HEIGHT and
# the camera starts at the origin. Every scene element is a planar textured rectangle (a "sprite": facade, tree,
# car, pedestrian, ...) that may translate at a constant velocity; the road plane is infinite and the sky lies at
# infinity. A pixel's colour and label are functions of the surface point it sees, so the motion of every pixel
# follows analytically from the camera poses and the sprite velocities.

_NEAR = 0.3  # metres: surfaces closer to the camera are not drawn
_CAMERA_HEIGHT = 1.4  # metres above the road
_PITCH = 0.05  # radians the camera is tilted down
_FOCAL_PER_WIDTH = 0.75  # focal length in pixels per pixel of image width: 67 degrees horizontal field of view
_MAX_LATERAL = 3.0  # metres the camera may drift sideways
_MAX_HEADING = 0.35  # radians the camera may turn away from the street direction
_KERB = 0.25  # metres
_SKY = -1  # surface id of the sky
_CHUNK = 32768  # points processed at a time (painting, correspondence): temporaries stay in cache
_ROUNDING = 1e-3  # pixels: tolerance for float rounding of projected positions
_CLEAR = 255  # painter label for "no surface here" (transparent part of a sprite)

_X_AXIS = np.array([1.0, 0.0, 0.0])
_UP = np.array([0.0, -1.0, 0.0])
_Z_AXIS = np.array([0.0, 0.0, 1.0])

_BUILDING_COLOURS = (
    (128, 128, 126),
    (176, 174, 170),
    (198, 184, 152),
    (150, 78, 58),
    (214, 210, 200),
    (92, 90, 94),
    (206, 186, 122),
    (118, 128, 146),
    (168, 120, 96),
)
_CAR_COLOURS = (
    (230, 230, 228),
    (160, 162, 166),
    (100, 102, 108),
    (30, 30, 34),
    (170, 30, 30),
    (30, 60, 140),
    (40, 80, 50),
    (210, 180, 40),
    (120, 30, 60),
)
_CLOTHES = ((30, 30, 40), (170, 40, 40), (40, 70, 150), (200, 200, 190), (90, 110, 60), (140, 100, 70), (220, 160, 40))
_SKIN = ((236, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 45))


@dataclass(frozen=True)
class EgoMotion:
    """Camera motion along the street.

    ``speed``: forward speed in m/s (0 stands still). ``yaw_rate``: turn rate in rad/s, positive to the right; the
    heading is along the street at the clip's middle frame, so a turn is a gentle arc centred on the clip.
    ``lateral_speed``: sideways drift in m/s, positive to the right (a lane change).
    """

    speed: float = 8.0
    yaw_rate: float = 0.03
    lateral_speed: float = 0.0


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera ``_CAMERA_HEIGHT`` above the road at ``(x, z)`` metres.

    It is turned ``yaw`` radians right and tilted ``pitch`` radians down; focal length ``_FOCAL_PER_WIDTH * width``
    pixels, principal point at the image centre, pixel centres at integer coordinates.
    """

    width: int
    height: int
    x: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = _PITCH

    @property
    def focal(self) -> float:
        return _FOCAL_PER_WIDTH * self.width

    @property
    def centre(self) -> np.ndarray:
        """``(3,)`` world position in metres."""
        return np.array([self.x, 0.0, self.z])

    def rotation(self) -> np.ndarray:
        """``(3, 3)`` world-to-camera rotation."""
        cy, sy, cp, sp = np.cos(self.yaw), np.sin(self.yaw), np.cos(self.pitch), np.sin(self.pitch)
        yaw = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        return pitch @ yaw

    def rays(self) -> np.ndarray:
        """``(3, H, W)`` float32 world directions through the pixel centres, scaled to unit camera depth."""
        xs = (np.arange(self.width, dtype=np.float32) - (self.width - 1) / 2) / self.focal
        ys = (np.arange(self.height, dtype=np.float32) - (self.height - 1) / 2) / self.focal
        r = self.rotation().astype(np.float32)
        return r[0][:, None, None] * xs[None, None, :] + r[1][:, None, None] * ys[None, :, None] + r[2][:, None, None]

    def horizon_row(self) -> float:
        """Image row (pixels) of the horizon line."""
        return (self.height - 1) / 2 - self.focal * np.tan(self.pitch)


def ego_trajectory(ego: EgoMotion, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera offset from its start (``x``, ``z`` in metres) and heading (radians) at ``times``, each ``(T,)``.

    ``times`` are in seconds, ``(T,)``, starting at 0. The path is the arc of constant ``speed`` and ``yaw_rate``
    plus the lateral drift.
    """
    heading = ego.yaw_rate * (times - 0.5 * (times[0] + times[-1]))
    if abs(ego.yaw_rate) < 1e-9:
        x, z = np.zeros_like(times), ego.speed * times
    else:
        radius = ego.speed / ego.yaw_rate
        x = radius * (np.cos(heading[0]) - np.cos(heading))
        z = radius * (np.sin(heading) - np.sin(heading[0]))
    return x + ego.lateral_speed * times, z, heading


class _Noise:
    """Smooth value noise over a periodic 256 x 256 lattice of Gaussian values (standard deviation 0.5)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.lattice = (0.5 * rng.standard_normal(256 * 256)).astype(np.float32)

    def cell(self, iu: np.ndarray, iv: np.ndarray) -> np.ndarray:
        """Return the lattice value at integer cells (any integers: the lattice repeats)."""
        return self.lattice[((iv.astype(np.int32) & 255) << 8) | (iu.astype(np.int32) & 255)]

    def smooth(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Noise at ``(u, v)`` in lattice cells, smoothstep-interpolated between cells."""
        fu, fv = np.floor(u), np.floor(v)
        tu, tv = u - fu, v - fv
        iu, iv = fu.astype(np.int32) & 255, (fv.astype(np.int32) & 255) << 8
        iu1, iv1 = (iu + 1) & 255, (iv + 256) & 0xFFFF
        a, b = self.lattice[iv | iu], self.lattice[iv | iu1]
        c, d = self.lattice[iv1 | iu], self.lattice[iv1 | iu1]
        su, sv = tu * tu * (3 - 2 * tu), tv * tv * (3 - 2 * tv)
        ab = a + (b - a) * su
        return ab + (c + (d - c) * su - ab) * sv

    def fbm(self, u: np.ndarray, v: np.ndarray, footprint: np.ndarray, octaves: int = 3) -> np.ndarray:
        """Octaves of noise at ``(u, v)`` cells, each halving in size and amplitude.

        An octave fades out where ``footprint`` (pixel size on the surface, in cells) exceeds half its cell size,
        against aliasing.
        """
        total = np.zeros_like(u)
        for k in range(octaves):
            scale = float(2**k)
            weight = np.clip(1.5 - footprint * scale, 0.0, 1.0) / scale
            total += weight * self.smooth(u * scale + 17.0 * k, v * scale)
        return total


@dataclass(frozen=True)
class _Street:
    """Cross-section of the street and its surface look.

    x is in metres. Lanes of ``lane_width`` lie left and right of the centre line at x = 0, with a parking strip, a
    kerb and a pavement on each side.
    """

    lane_width: float
    lanes_left: int
    lanes_right: int
    parking: float
    pavement_left: float
    pavement_right: float
    asphalt: tuple[float, float, float]
    paving: tuple[float, float, float]
    centre_colour: tuple[float, float, float]
    dashed_centre: bool
    crossings: tuple[float, ...]
    shadow_width: float

    @property
    def road_left(self) -> float:
        return -(self.lanes_left * self.lane_width + self.parking)

    @property
    def road_right(self) -> float:
        return self.lanes_right * self.lane_width + self.parking

    @property
    def building_left(self) -> float:
        return self.road_left - _KERB - self.pavement_left

    @property
    def building_right(self) -> float:
        return self.road_right + _KERB + self.pavement_right

    @property
    def ego_x(self) -> float:
        """Return the camera's start: the centre of the right-hand lane next to the centre line."""
        return 0.5 * self.lane_width


@dataclass
class _Sprite:
    """A planar textured rectangle; its painter ``kind`` gives its look.

    Its points are ``origin + velocity * t + u * axis_u + v * axis_v`` (metres, seconds) with
    ``extent[0] <= u < extent[1]`` and ``extent[2] <= v < extent[3]``.
    """

    kind: str
    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    extent: tuple[float, float, float, float]
    colour: np.ndarray
    velocity: np.ndarray
    params: dict[str, float]
    axes: tuple[tuple[int, float], tuple[int, float], int] = field(init=False)

    def __post_init__(self) -> None:
        """``axes``: the world axis index and sign of ``axis_u`` and of ``axis_v``, and the axis of the normal.

        Both axes must be world axes: every sprite is upright, facing along or across the street, or the road plane.
        """
        index = [int(np.argmax(np.abs(a))) for a in (self.axis_u, self.axis_v)]
        if (
            any(abs(a[i]) != 1.0 for a, i in zip((self.axis_u, self.axis_v), index, strict=True))
            or index[0] == index[1]
        ):
            raise ValueError(f"sprite axes {self.axis_u}, {self.axis_v} are not two different world axes")
        normal = 3 - index[0] - index[1]
        self.axes = ((index[0], float(self.axis_u[index[0]])), (index[1], float(self.axis_v[index[1]])), normal)

    def corners(self) -> np.ndarray:
        """``(4, 3)`` world corners at time 0, in order around the rectangle."""
        u0, u1, v0, v1 = self.extent
        return np.stack(
            [self.origin + u * self.axis_u + v * self.axis_v for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))]
        )


def _upright(
    kind: str,
    x: float,
    z: float,
    size: tuple[float, float],
    colour: tuple[float, float, float],
    side: bool = False,
    speed: float = 0.0,
    elevation: float = 0.0,
    **params: float,
) -> _Sprite:
    """Build an upright sprite ``size = (width, height)`` metres centred on ``(x, z)``.

    Its bottom is ``elevation`` metres above the road; it faces along the street (``side=False``) or across it, and
    moves along the street at ``speed`` m/s. Local ``u`` runs right (or along the street), ``v`` up from the bottom.
    """
    width, height = size
    return _Sprite(
        kind=kind,
        origin=np.array([x, _CAMERA_HEIGHT - elevation, z]),
        axis_u=_Z_AXIS if side else _X_AXIS,
        axis_v=_UP,
        extent=(-width / 2, width / 2, 0.0, height),
        colour=np.asarray(colour, np.float32),
        velocity=np.array([0.0, 0.0, speed]),
        params=dict(params),
    )


def _near_segment(
    u: np.ndarray, v: np.ndarray, a: tuple[float, float], b: tuple[float, float], half: float
) -> np.ndarray:
    """Points within ``half`` metres of the segment ``a``-``b`` (local coordinates)."""
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / (du * du + dv * dv), 0.0, 1.0)
    return (u - a[0] - t * du) ** 2 + (v - a[1] - t * dv) ** 2 < half * half


def _phase(x: np.ndarray, period: float) -> np.ndarray:
    """Position of ``x`` within its period, in [0, 1) (faster than ``%`` on floats)."""
    t = x / period
    return t - np.floor(t)


def _coverage(lo: np.ndarray, hi: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Return the fraction of a pixel footprint that the interval ``[lo, hi]`` metres covers.

    The footprint is ``fp`` metres wide, centred on 0. This gives box-filtered (antialiased) edges of painted
    patterns.
    """
    half = 0.5 * fp
    return np.clip((np.minimum(hi, half) - np.maximum(lo, -half)) / fp, 0.0, 1.0)


def _tint(colour: np.ndarray | tuple[float, float, float], factor: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RGB: ``colour`` scaled per point by ``factor`` ``(N,)``."""
    return np.asarray(colour, np.float32)[None, :] * factor[:, None]


def _solid(n: int, name: str) -> np.ndarray:
    """``(n,)`` uint8 labels, all of class ``name``."""
    return np.full(n, _ID[name], np.uint8)


def _paint_building(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a facade: stucco noise, darker near the ground, a cornice, a grid of windows and maybe a shop front."""
    p = s.params
    top = s.extent[3]
    grain = noise.fbm(u / 0.5 + p["seed"], v / 0.5, fp.max(axis=0) / 0.5, 2)
    light = p["light"] * (0.8 + 0.2 * np.clip(v / 4.0, 0.0, 1.0)) * (1.0 + 0.15 * grain)
    light *= 1.0 - 0.3 * _coverage(top - 0.45 - v, top - v, fp[1])
    rgb = _tint(s.colour, light)
    cu = (u - s.extent[0]) / p["bay"]
    cv = (v - p["ground_floor"]) / p["floor"]
    du, dv = (cu - np.floor(cu) - 0.5) * p["bay"], (cv - np.floor(cv) - 0.45) * p["floor"]
    half_w, half_h = p["window_w"] * p["bay"] / 2, p["window_h"] * p["floor"] / 2
    cover = _coverage(-half_w - du, half_w - du, fp[0]) * _coverage(-half_h - dv, half_h - dv, fp[1])
    window = np.flatnonzero((cover > 0) & (v > p["ground_floor"]) & (v < top - 0.8))
    glass = (0.55 + 0.5 * noise.cell(np.floor(cu[window]) + p["seed"], np.floor(cv[window]))) * (0.8 + 0.6 * dv[window])
    rgb[window] += cover[window, None] * (_tint((60.0, 72.0, 90.0), glass) - rgb[window])
    if p["shop"]:
        shop = v < p["ground_floor"]
        rgb[shop] = _tint((70.0, 60.0, 55.0), 1.0 + 0.1 * grain[shop])
        display = shop & (_phase(u - s.extent[0], 4.5) > 0.11) & (v > 0.4) & (v < p["ground_floor"] - 0.6)
        rgb[display] = _tint((45.0, 55.0, 62.0), 0.8 + 0.3 * v[display])
    return _solid(u.size, "Building"), rgb


def _paint_backdrop(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Far-away hazy city blocks at the end of the street, labelled Void; clear above their skyline."""
    block = np.floor(u / 18.0)
    skyline = 10.0 + 30.0 * np.clip(noise.cell(block, block * 7 + 3) + 0.5, 0.0, 1.0)
    labels = np.where(v < skyline, _ID["Void"], _CLEAR).astype(np.uint8)
    shade = 0.9 + 0.2 * noise.fbm(u / 4.0, v / 4.0, fp.max(axis=0) / 4.0, 2) + 0.1 * np.abs(noise.cell(block, block))
    rgb = _tint(s.colour, shade)
    return labels, rgb


def _paint_tree(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a trunk under a lobed, ragged crown of leafy noise."""
    p = s.params
    rw, rh = s.extent[1], p["crown"] / 2
    cv = s.extent[3] - rh
    du, dv = u / rw, (v - cv) / rh
    radius = np.sqrt(du * du + dv * dv)
    angle = np.arctan2(dv, du)
    lobes = 0.88 - 0.08 * np.sin(3 * angle + p["seed"]) - 0.06 * np.sin(5 * angle + 2 * p["seed"])
    leaves = noise.fbm(u / 0.35 + p["seed"], v / 0.35, fp.max(axis=0) / 0.35, 2)
    crown = (radius < lobes) & ((radius < lobes - 0.2) | (leaves > -0.15))
    trunk = (np.abs(u - p["lean"] * v) < p["trunk"] / 2) & (v < cv)
    labels = np.where(crown | trunk, _ID["Tree"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, (0.7 + 0.25 * dv) * (1.0 + 0.45 * leaves))
    rgb[trunk & ~crown] = _tint((95.0, 72.0, 52.0), 1.0 + 0.2 * leaves[trunk & ~crown])
    return labels, rgb


def _paint_pole(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a shaft, and for a street light an arm over the road ending in a lamp head."""
    p = s.params
    top, arm, side = s.extent[3] - 0.1, p["arm"], p["arm_dir"]
    shaft = (np.abs(u) < p["width"] / 2) & (v < top)
    beam = (v > top - 0.1) & (v < top) & (u * side >= 0) & (u * side < arm)
    lamp = (arm > 0) & (np.abs(u - side * arm) < 0.3) & (v > top - 0.18) & (v < top + 0.08)
    labels = np.where(shaft | beam | lamp, _ID["Pole"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, (0.8 + 0.2 * v / top) * (1.0 + 0.1 * noise.smooth(u / 0.05 + p["seed"], v / 0.4)))
    return labels, rgb


def _paint_sign(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a round, triangular or rectangular traffic sign, or a traffic light (``shape`` 0..3)."""
    r = s.extent[1]
    cu, cv = u / r, v / r - 1.0
    shape = int(s.params["shape"])
    white, red, blue, dark = (230.0, 230.0, 225.0), (200.0, 30.0, 35.0), (30.0, 80.0, 170.0), (25.0, 25.0, 28.0)
    rgb = _tint(white, np.ones_like(u))
    if shape == 0:
        rr = cu * cu + cv * cv
        inside = rr < 1.0
        rgb[rr > 0.56] = red
        rgb[(np.abs(cv) < 0.15) & (np.abs(cu) < 0.55)] = dark
    elif shape == 1:
        inside = (cv > -0.8) & (np.abs(cu) < (0.9 - cv) / 1.7)
        rgb[~((cv > -0.6) & (np.abs(cu) < (0.5 - cv) / 1.7))] = red
    elif shape == 2:
        inside = (np.abs(cu) < 1.0) & (np.abs(cv) < 0.75)
        rgb[(np.abs(cu) < 0.88) & (np.abs(cv) < 0.63)] = blue
        rgb[(np.abs(cu) < 0.7) & (np.abs(np.abs(cv) - 0.25) < 0.07)] = white
    else:
        inside = (np.abs(cu) < 0.45) & (np.abs(cv) < 1.0)
        rgb[:] = dark
        lit = int(s.params["seed"]) % 3
        for k, colour in enumerate(((220.0, 40.0, 30.0), (230.0, 160.0, 30.0), (40.0, 200.0, 80.0))):
            bulb = cu * cu + (cv - 0.6 + 0.6 * k) ** 2 < 0.08
            rgb[bulb] = np.asarray(colour) * (1.0 if k == lit else 0.35)
    labels = np.where(inside, _ID["SignSymbol"], _CLEAR).astype(np.uint8)
    return labels, rgb * (0.9 + 0.1 * noise.smooth(u / 0.1, v / 0.1))[:, None]


def _paint_fence(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint posts and two rails, with pickets (``pickets`` 1) or open panels."""
    p = s.params
    top = s.extent[3]
    x = u - s.extent[0]
    posts = _phase(x, 2.4) < 0.033
    rails = (np.abs(v - 0.25) < 0.04) | (np.abs(v - (top - 0.08)) < 0.04)
    bars = (_phase(x, 0.14) < 0.36) if p["pickets"] else (np.abs(v - top / 2) < 0.03)
    labels = np.where(posts | rails | bars, _ID["Fence"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, p["light"] * (1.0 + 0.12 * noise.smooth(x / 0.3 + p["seed"], v / 0.3)))
    return labels, rgb


def _paint_car_rear(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a car seen from behind (red lamps) or ahead (``front`` 1: white lamps): wheels, body, cabin with glass."""
    x, y = u / s.extent[1], v / s.extent[3]
    ax = np.abs(x)
    wheel = (y < 0.26) & (ax > 0.6) & (ax < 0.96)
    body = (y >= 0.14) & (y < 0.58) & (ax < 0.99)
    cabin_half = 0.86 - 0.55 * (y - 0.58)
    cabin = (y >= 0.58) & (y < 0.98) & (ax < cabin_half)
    labels = np.where(wheel | body | cabin, _ID["Car"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, (0.75 + 0.35 * y) * (1.0 + 0.06 * noise.smooth(u / 0.3 + s.params["seed"], v / 0.3)))
    rgb[wheel & ~body] = (28.0, 28.0, 30.0)
    rgb[body & (y < 0.22)] = (50.0, 50.0, 54.0)
    rgb[body & (ax < 0.2) & (y > 0.24) & (y < 0.33)] = (225.0, 225.0, 215.0)
    lamp = body & (y > 0.4) & (y < 0.52) & (ax > 0.68) & (ax < 0.93)
    rgb[lamp] = (235.0, 235.0, 205.0) if s.params["front"] else (190.0, 30.0, 30.0)
    glass = cabin & (y > 0.63) & (y < 0.93) & (ax < cabin_half - 0.08)
    rgb[glass] = _tint((40.0, 48.0, 60.0), 0.8 + 0.8 * (y[glass] - 0.63))
    return labels, rgb


def _paint_car_side(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a parked car in profile: two wheels with rims, body, cabin with two windows."""
    half, h = s.extent[1], s.extent[3]
    wheel_r = 0.32
    hub = np.minimum((u - (half - 0.8)) ** 2, (u + half - 0.8) ** 2) + (v - wheel_r) ** 2
    wheel = hub < wheel_r * wheel_r
    body = (v >= 0.25) & (v < 0.58 * h) & (np.abs(u) < half - 0.05)
    slope = 0.6 * (v - 0.58 * h) / (0.42 * h)
    cabin = (v >= 0.58 * h) & (v < h) & (u > -0.55 * half + slope) & (u < 0.45 * half - slope)
    labels = np.where(wheel | body | cabin, _ID["Car"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, (0.7 + 0.4 * v / h) * (1.0 + 0.06 * noise.smooth(u / 0.3 + s.params["seed"], v / 0.3)))
    rgb[wheel] = (28.0, 28.0, 30.0)
    rgb[hub < (0.6 * wheel_r) ** 2] = (150.0, 150.0, 155.0)
    glass = cabin & (v > 0.62 * h) & (v < 0.94 * h) & (u > -0.5 * half + slope) & (u < 0.4 * half - slope)
    glass &= np.abs(u + 0.05 * half) > 0.05
    rgb[glass] = _tint((45.0, 52.0, 64.0), 0.8 + 0.6 * v[glass] / h)
    return labels, rgb


def _paint_pedestrian(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a person seen from the front or back: head with hair, torso and arms, two legs with shoes."""
    p = s.params
    h = s.extent[3]
    k = h / 1.75
    head_r, hip = 0.11 * k, 0.5 * h
    shoulder = h - 2.2 * head_r
    au = np.abs(u)
    head = au**2 + (v - h + head_r) ** 2 < head_r * head_r
    torso = (v >= hip) & (v < shoulder) & (au < 0.18 * k + 0.03 * (v - hip))
    arms = (v >= hip - 0.1 * k) & (v < shoulder - 0.02) & (au > 0.2 * k) & (au < 0.26 * k)
    legs = (v < hip) & (np.abs(au - 0.09 * k - p["stride"] * (hip - v)) < 0.065 * k)
    labels = np.where(head | torso | arms | legs, _ID["Pedestrian"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, 1.0 + 0.08 * noise.smooth(u / 0.1 + p["seed"], v / 0.1))
    rgb[legs] = _tint(_CLOTHES[int(p["trousers"])], 0.8 + 0.2 * v[legs])
    rgb[legs & (v < 0.07)] = (30.0, 28.0, 28.0)
    rgb[head] = _SKIN[int(p["skin"])]
    rgb[head & (v > h - 0.7 * head_r)] = (50.0, 38.0, 30.0)
    rgb[arms & (v < hip)] = _SKIN[int(p["skin"])]
    return labels, rgb


_BIKE = ((-0.55, 0.34), (-0.05, 0.32), (-0.18, 0.85), (0.38, 0.85), (0.55, 0.34), (0.32, 1.0))
_BIKE_TUBES = ((0, 1), (0, 2), (1, 2), (2, 3), (1, 3), (3, 4), (3, 5))


def _paint_cyclist(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a rider on a bicycle in profile: spoked-wheel rings, a diamond frame, torso, head, arm and leg."""
    p = s.params
    if p["rear"]:
        return _paint_cyclist_rear(s, u, v, noise)
    x = u * p["heading"]
    wheel_d = np.sqrt(np.minimum((x - 0.55) ** 2, (x + 0.55) ** 2) + (v - 0.34) ** 2)
    wheel = (np.abs(wheel_d - 0.31) < 0.035) | (wheel_d < 0.04)
    frame = np.zeros_like(wheel)
    for a, b in _BIKE_TUBES:
        frame |= _near_segment(x, v, _BIKE[a], _BIKE[b], 0.025)
    head = (x - 0.22) ** 2 + (v - 1.66) ** 2 < 0.11**2
    torso = _near_segment(x, v, (-0.16, 0.95), (0.12, 1.45), 0.15)
    arm = _near_segment(x, v, (0.12, 1.45), (0.32, 1.0), 0.04)
    leg = _near_segment(x, v, (-0.16, 0.95), (0.1, 0.7), 0.07) | _near_segment(x, v, (0.1, 0.7), (0.0, 0.32), 0.055)
    rider = head | torso | arm | leg
    labels = np.where(wheel | frame | rider, _ID["Bicyclist"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, 1.0 + 0.08 * noise.smooth(x / 0.1 + p["seed"], v / 0.1))
    rgb[frame] = _CAR_COLOURS[int(p["bike"])]
    rgb[wheel] = (30.0, 30.0, 32.0)
    rgb[leg] = _CLOTHES[int(p["trousers"])]
    rgb[head] = _SKIN[int(p["skin"])]
    return labels, rgb


def _paint_cyclist_rear(s: _Sprite, u: np.ndarray, v: np.ndarray, noise: _Noise) -> tuple[np.ndarray, np.ndarray]:
    """Paint a rider on a bicycle seen from behind: the rear tyre edge-on, handlebar, back, arms, legs and head."""
    p = s.params
    au = np.abs(u)
    wheel = (au < 0.025) & (v < 0.68)
    bar = (au < 0.3) & (np.abs(v - 1.0) < 0.025)
    torso = (v >= 0.95) & (v < 1.45) & (au < 0.14 + 0.1 * (v - 0.95))
    arms = _near_segment(au, v, (0.19, 1.4), (0.28, 1.0), 0.04)
    legs = (v >= 0.3) & (v < 0.95) & (au > 0.04) & (au < 0.12)
    head = u * u + (v - 1.58) ** 2 < 0.11**2
    labels = np.where(wheel | bar | torso | arms | legs | head, _ID["Bicyclist"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, 1.0 + 0.08 * noise.smooth(u / 0.1 + p["seed"], v / 0.1))
    rgb[legs] = _CLOTHES[int(p["trousers"])]
    rgb[wheel | bar] = (30.0, 30.0, 32.0)
    rgb[head] = (50.0, 50.0, 55.0)
    return labels, rgb


def _paint_clutter(
    s: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Unlabelled street furniture (a bin or a box with a rounded lid), labelled Void."""
    half, h = s.extent[1], s.extent[3]
    lid = (v < h - half) | (u * u + (v - h + half) ** 2 < half * half)
    labels = np.where(lid, _ID["Void"], _CLEAR).astype(np.uint8)
    rgb = _tint(s.colour, (0.8 + 0.25 * v / h) * (1.0 + 0.12 * noise.smooth(u / 0.15 + s.params["seed"], v / 0.15)))
    return labels, rgb


# A painter maps local coordinates ``u``, ``v`` ``(N,)`` metres and the pixel footprint ``fp`` ``(2, N)`` (metres
# along u and v, for antialiasing) to labels ``(N,)`` uint8 (``_CLEAR`` where the sprite is transparent) and RGB
# ``(N, 3)`` float32 in 0..255.
_PAINTERS = {
    "building": _paint_building,
    "backdrop": _paint_backdrop,
    "tree": _paint_tree,
    "pole": _paint_pole,
    "sign": _paint_sign,
    "fence": _paint_fence,
    "car_rear": _paint_car_rear,
    "car_side": _paint_car_side,
    "pedestrian": _paint_pedestrian,
    "cyclist": _paint_cyclist,
    "clutter": _paint_clutter,
}


def _road_markings(st: _Street, x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """How much of each road pixel at ``(x, z)`` metres (footprint ``fp`` ``(2, N)`` metres) is painted, 0..1.

    Painted are lane lines 14 cm wide at every multiple of the lane width (the outer ones and a solid centre line
    unbroken, the others dashed 3 m in 9 m), parking bay ticks and zebra crossings.
    """
    k = np.rint(x / st.lane_width)
    solid = (k == -st.lanes_left) | (k == st.lanes_right) | ((k == 0) & (not st.dashed_centre))
    dx = x - k * st.lane_width
    line = (k >= -st.lanes_left) & (k <= st.lanes_right) & (solid | (_phase(z, 9.0) < 1 / 3))
    paint = _coverage(-0.07 - dx, 0.07 - dx, fp[0]) * line
    lanes_r, lanes_l = st.road_right - st.parking, st.road_left + st.parking
    lanes = (x > lanes_l) & (x < lanes_r)
    hard = ~lanes & (_phase(z, 5.5) < 0.022)
    for zc in st.crossings:
        hard |= lanes & (z > zc) & (z < zc + 3.0) & (_phase(x, 1.0) < 0.5)
    return np.maximum(paint, hard)


def _paint_ground(
    st: _Street, x: np.ndarray, z: np.ndarray, fp: np.ndarray, noise: _Noise
) -> tuple[np.ndarray, np.ndarray]:
    """Paint the road plane at world ``(x, z)`` metres (pixel footprint ``fp`` ``(2, N)`` metres along x and z).

    Asphalt with markings, kerbs, paved pavements; the left side lies partly in the shadow of its buildings.
    """
    road = (x >= st.road_left) & (x < st.road_right)
    kerb = ~road & (x > st.road_left - _KERB) & (x < st.road_right + _KERB)
    labels = np.where(road, _ID["Road"], _ID["Pavement"]).astype(np.uint8)
    rgb = np.empty((x.size, 3), np.float32)
    road_px = np.flatnonzero(road)
    xr, zr, fr = x[road_px], z[road_px], fp[:, road_px]
    asphalt = 1.0 + 0.1 * noise.fbm(xr / 0.3, zr / 0.3, fr[1] / 0.3, 1) + 0.12 * noise.smooth(xr / 3.0 + 40, zr / 7.0)
    road_rgb = _tint(st.asphalt, asphalt)
    paint = _road_markings(st, xr, zr, fr)
    marked = np.flatnonzero(paint > 0)
    colour = np.where(np.abs(xr[marked, None]) < 0.1, np.float32(st.centre_colour), np.float32(225.0))
    colour *= (0.85 + 0.25 * noise.smooth(xr[marked] / 0.5, zr[marked] / 0.5))[:, None]
    road_rgb[marked] += paint[marked, None] * (colour - road_rgb[marked])
    rgb[road_px] = road_rgb
    side = np.flatnonzero(~road)
    xs, zs, fs = x[side], z[side], fp[:, side]
    slab = 0.92 + 0.16 * noise.cell(np.floor(xs / 0.6), np.floor(zs / 0.6))
    jx, jz = (xs / 0.6 - np.rint(xs / 0.6)) * 0.6, (zs / 0.6 - np.rint(zs / 0.6)) * 0.6
    joint = 1.0 - (1.0 - _coverage(-0.015 - jx, 0.015 - jx, fs[0])) * (1.0 - _coverage(-0.015 - jz, 0.015 - jz, fs[1]))
    shade = (slab + joint * (0.78 - slab)) * (1.0 + 0.06 * noise.fbm(xs / 0.2, zs / 0.2, fs[1] / 0.2, 1))
    rgb[side] = _tint(st.paving, shade)
    rgb[kerb] = _tint((188.0, 186.0, 180.0), 1.0 + 0.05 * noise.smooth(x[kerb] / 0.2, z[kerb] / 0.2))
    near = np.flatnonzero(x < st.road_left + 1.6 * st.shadow_width)
    wobble = noise.smooth(z[near] / 12.0 + 90, np.zeros(near.size, np.float32))
    rgb[near[x[near] < st.road_left + st.shadow_width * (1.0 + 0.6 * wobble)]] *= 0.62
    return labels, rgb


def _paint_sky(direction: np.ndarray, focal: float, noise: _Noise, cloudiness: float) -> np.ndarray:
    """``(N, 3)`` sky colour along ``(N, 3)`` world directions (unit camera depth, ``focal`` in pixels).

    A horizon-to-zenith gradient with perspective clouds on a high layer.
    """
    length = np.linalg.norm(direction, axis=1)
    elevation = np.clip(-direction[:, 1] / length, 0.0, 1.0)
    zenith = np.sqrt(elevation)[:, None]
    rgb = (1.0 - zenith) * np.float32([205.0, 215.0, 228.0]) + zenith * np.float32([95.0, 135.0, 195.0])
    lift = np.maximum(-direction[:, 1], 0.02)
    cu, cv = direction[:, 0] / lift * 1.5, direction[:, 2] / lift * 1.5
    footprint = 1.5 * length / (focal * lift * lift)
    cloud = np.clip(2.0 * (noise.fbm(cu, cv, footprint) + cloudiness), 0.0, 1.0) * np.clip(elevation * 8, 0.0, 1.0)
    return rgb + cloud[:, None] * (np.float32([238.0, 238.0, 240.0]) - rgb)


def _jitter(
    rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...], amount: float = 12.0
) -> tuple[float, float, float]:
    """Return a palette colour picked at random, each channel shifted by up to ``amount``."""
    base = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
    return tuple(np.clip(base + rng.uniform(-amount, amount, 3), 0.0, 255.0))


def _random_street(rng: np.random.Generator, length: float) -> _Street:
    """Return a street cross-section with 1-2 lanes each way, and zebra crossings over ``length`` metres."""
    grey = rng.uniform(70.0, 112.0)
    paving = rng.uniform(150.0, 190.0)
    tint = rng.uniform(-10.0, 10.0)
    first_crossing = rng.uniform(25.0, 80.0)
    return _Street(
        lane_width=rng.uniform(3.0, 3.6),
        lanes_left=int(rng.integers(1, 3)),
        lanes_right=int(rng.integers(1, 3)),
        parking=rng.uniform(2.0, 2.4),
        pavement_left=rng.uniform(2.5, 5.0),
        pavement_right=rng.uniform(2.5, 5.0),
        asphalt=(grey, grey, grey + rng.uniform(0.0, 8.0)),
        paving=(paving + tint, paving, paving - tint),
        centre_colour=(225.0, 225.0, 225.0) if rng.random() < 0.6 else (225.0, 185.0, 60.0),
        dashed_centre=bool(rng.random() < 0.5),
        crossings=tuple(np.arange(first_crossing, length, rng.uniform(60.0, 120.0))),
        shadow_width=rng.uniform(2.0, 6.0),
    )


def _kerb_x(st: _Street, side: int) -> float:
    """Return the outer edge of the kerb (where the pavement starts) on ``side`` -1 (left) or 1 (right), metres."""
    return st.road_right + _KERB if side > 0 else st.road_left - _KERB


def _building_block(rng: np.random.Generator, x: float, side: int, z0: float, width: float) -> list[_Sprite]:
    """Place a building on ``side``: its facade at ``x`` from ``z0`` to ``z0 + width`` metres and its two end walls."""
    height = rng.uniform(6.0, 28.0)
    colour = _jitter(rng, _BUILDING_COLOURS, 15.0)
    params = {
        "seed": rng.uniform(0.0, 256.0),
        "light": 1.0 if side > 0 else 0.72,
        "bay": rng.uniform(1.8, 3.2),
        "floor": rng.uniform(2.9, 3.6),
        "ground_floor": rng.uniform(3.2, 4.2),
        "window_w": 0.0 if rng.random() < 0.1 else rng.uniform(0.35, 0.6),
        "window_h": rng.uniform(0.4, 0.6),
        "shop": float(rng.random() < 0.5),
    }
    facade = _upright("building", x, z0 + width / 2, (width, height), colour, side=True, **params)
    depth = 12.0
    ends = [
        _upright("building", x + side * depth / 2, z, (depth, height), colour, **(params | {"light": 0.85}))
        for z in (z0, z0 + width)
    ]
    return [facade, *ends]


def _buildings(rng: np.random.Generator, st: _Street, z_min: float, z_max: float) -> list[_Sprite]:
    """Rows of buildings of varied width, height, colour and set-back along both pavements, with side streets."""
    out = []
    for side in (-1, 1):
        line = st.building_right if side > 0 else st.building_left
        z = z_min
        while z < z_max:
            width = rng.uniform(7.0, 24.0)
            if rng.random() < 0.1:
                z += rng.uniform(5.0, 10.0)
                continue
            out += _building_block(rng, line + side * rng.uniform(0.0, 1.2), side, z, width)
            z += width
    return out


def _tree(rng: np.random.Generator, x: float, z: float) -> _Sprite:
    """Place a street tree 4.5-9 m tall at ``(x, z)`` metres."""
    height = rng.uniform(4.5, 9.0)
    greens = ((50, 90, 35), (70, 110, 40), (90, 125, 55), (60, 100, 60), (140, 125, 45))
    return _upright(
        "tree",
        x,
        z,
        (rng.uniform(2.5, 5.5), height),
        _jitter(rng, greens, 10.0),
        seed=rng.uniform(0.0, 256.0),
        crown=rng.uniform(0.5, 0.7) * height,
        trunk=rng.uniform(0.2, 0.4),
        lean=rng.uniform(-0.04, 0.04),
    )


def _pole(rng: np.random.Generator, x: float, z: float, side: int, light: bool) -> _Sprite:
    """Place a street light (arm over the road) or a plain pole at ``(x, z)`` on pavement ``side``."""
    arm = rng.uniform(1.0, 2.2) if light else 0.0
    width = rng.uniform(0.14, 0.22)
    height = rng.uniform(6.0, 8.0) if light else rng.uniform(3.0, 5.0)
    colour = _jitter(rng, ((130, 130, 128), (160, 160, 150), (45, 65, 55), (90, 90, 95)), 8.0)
    span = arm + 0.4 if light else width
    return _upright(
        "pole", x, z, (2 * span, height + 0.1), colour, width=width, arm=arm, arm_dir=-side, seed=rng.uniform(0, 256)
    )


def _sign_post(rng: np.random.Generator, x: float, z: float) -> list[_Sprite]:
    """Place a thin post with a traffic sign or a traffic light on top, the sign just in front of the post."""
    shape = int(rng.integers(4))
    radius = rng.uniform(0.3, 0.45)
    post_height = rng.uniform(2.4, 3.2)
    post = _upright(
        "pole", x, z, (0.1, post_height + 0.1), (150.0, 150.0, 150.0), width=0.09, arm=0.0, arm_dir=1.0, seed=0.0
    )
    elevation = post_height - 1.6 * radius
    sign = _upright(
        "sign",
        x,
        z - 0.05,
        (2 * radius, 2 * radius),
        (0.0, 0.0, 0.0),
        elevation=elevation,
        shape=float(shape),
        seed=float(rng.integers(3)),
    )
    return [post, sign]


def _fence(rng: np.random.Generator, x: float, z0: float, length: float, side: int) -> _Sprite:
    """Place a fence along the street at ``x`` from ``z0`` over ``length`` metres, on pavement ``side`` (-1 or 1)."""
    colours = ((120, 120, 120), (40, 70, 45), (215, 215, 210), (120, 85, 55), (60, 60, 70))
    return _upright(
        "fence",
        x,
        z0 + length / 2,
        (length, rng.uniform(0.9, 1.3)),
        _jitter(rng, colours, 10.0),
        side=True,
        pickets=float(rng.random() < 0.6),
        light=1.0 if side > 0 else 0.8,
        seed=rng.uniform(0, 256),
    )


def _car(rng: np.random.Generator, x: float, z: float, speed: float, oncoming: bool) -> _Sprite:
    """Place a car driving in a lane, seen from behind (or from the front if ``oncoming``)."""
    height = rng.uniform(2.0, 2.4) if rng.random() < 0.15 else rng.uniform(1.35, 1.75)
    size = (rng.uniform(1.65, 1.95), height)
    colour = _jitter(rng, _CAR_COLOURS, 10.0)
    return _upright("car_rear", x, z, size, colour, speed=speed, front=float(oncoming), seed=rng.uniform(0, 256))


def _parked_car(rng: np.random.Generator, x: float, z: float, length: float) -> _Sprite:
    """Place a car ``length`` metres long parked along the kerb, centred on ``(x, z)``."""
    size = (length, rng.uniform(1.35, 1.7))
    return _upright("car_side", x, z, size, _jitter(rng, _CAR_COLOURS, 10.0), side=True, seed=rng.uniform(0, 256))


def _pedestrian(rng: np.random.Generator, x: float, z: float, speed: float) -> _Sprite:
    """Place a person at ``(x, z)`` metres walking along the street at ``speed`` m/s (0: standing)."""
    return _upright(
        "pedestrian",
        x,
        z,
        (0.7, rng.uniform(1.55, 1.9)),
        _jitter(rng, _CLOTHES, 15.0),
        speed=speed,
        stride=rng.uniform(0.0, 0.22),
        trousers=float(rng.integers(len(_CLOTHES))),
        skin=float(rng.integers(len(_SKIN))),
        seed=rng.uniform(0, 256),
    )


def _cyclist(rng: np.random.Generator, x: float, z: float, speed: float, heading: float, rear: bool = False) -> _Sprite:
    """Place a cyclist riding along the street at ``speed``, in profile or seen from behind.

    In profile it faces ``heading`` (1: along z); with ``rear`` it is seen from behind.
    """
    return _upright(
        "cyclist",
        x,
        z,
        (0.7, 1.75) if rear else (1.9, 1.8),
        _jitter(rng, _CLOTHES, 15.0),
        side=not rear,
        rear=float(rear),
        speed=speed,
        heading=heading,
        bike=float(rng.integers(len(_CAR_COLOURS))),
        trousers=float(rng.integers(len(_CLOTHES))),
        skin=float(rng.integers(len(_SKIN))),
        seed=rng.uniform(0, 256),
    )


def _clutter(rng: np.random.Generator, x: float, z: float) -> _Sprite:
    """Place a bin or box at ``(x, z)`` metres."""
    colours = ((40, 70, 50), (90, 90, 90), (50, 60, 110), (110, 80, 50), (150, 60, 40))
    size = (rng.uniform(0.4, 0.8), rng.uniform(0.6, 1.2))
    return _upright("clutter", x, z, size, _jitter(rng, colours, 10.0), seed=rng.uniform(0, 256))


def _furniture(rng: np.random.Generator, st: _Street, z_min: float, z_max: float) -> list[_Sprite]:
    """Trees, street lights, sign posts, fences and unlabelled clutter along both pavements."""
    out: list[_Sprite] = []
    for side in (-1, 1):
        kerb = _kerb_x(st, side)
        line = st.building_right if side > 0 else st.building_left
        for z in np.arange(z_min + rng.uniform(0.0, 8.0), z_max, rng.uniform(9.0, 22.0)):
            if rng.random() < 0.75:
                out.append(_tree(rng, kerb + side * rng.uniform(0.7, 1.3), z + rng.uniform(-2.0, 2.0)))
        for z in np.arange(z_min + rng.uniform(0.0, 20.0), z_max, rng.uniform(18.0, 40.0)):
            out.append(_pole(rng, kerb + side * 0.35, z, side, light=rng.random() < 0.7))
        for z in np.arange(z_min + rng.uniform(0.0, 30.0), z_max, rng.uniform(25.0, 60.0)):
            out += _sign_post(rng, kerb + side * 0.3, z)
        for z in np.arange(z_min + rng.uniform(0.0, 30.0), z_max, rng.uniform(30.0, 70.0)):
            at_kerb = rng.random() < 0.6
            x = kerb + side * 0.15 if at_kerb else line - side * 0.3
            out.append(_fence(rng, x, z, rng.uniform(6.0, 25.0), side))
        for z in rng.uniform(z_min, z_max, int((z_max - z_min) / 20.0)):
            x = line - side * 0.5 if rng.random() < 0.6 else kerb + side * 0.5
            out.append(_clutter(rng, x, z))
    return out


def _parked_cars(rng: np.random.Generator, st: _Street, z_min: float, z_max: float) -> list[_Sprite]:
    """Cars in profile along both parking strips, with empty bays; none on the right within 30 m ahead."""
    out = []
    for side in (-1, 1):
        x = st.road_right - 0.35 * st.parking if side > 0 else st.road_left + 0.35 * st.parking
        z = z_min + rng.uniform(0.0, 5.0)
        while z < z_max:
            length = rng.uniform(3.8, 4.8)
            keep_clear = side > 0 and z + length > 0.0 and z < 30.0
            if rng.random() < 0.65 and not keep_clear:
                out.append(_parked_car(rng, x, z + length / 2, length))
            z += length + rng.uniform(0.5, 6.0)
    return out


def _traffic(
    rng: np.random.Generator, st: _Street, z_range: tuple[float, float], ego: tuple[float, float], moving: bool
) -> list[_Sprite]:
    """Cars in every lane, cyclists near both road edges and pedestrians on both pavements, over ``z_range`` metres.

    Each lane's cars drive at the lane's own speed, oncoming on the left; pedestrians walk or stand. ``ego``: the
    camera's speed (m/s) and the clip's duration (s); cars in the camera's lane start far enough ahead not to be
    reached.
    """
    z_min, z_max = z_range
    out: list[_Sprite] = []
    lanes = [(k + 0.5) * st.lane_width for k in range(st.lanes_right)]
    lanes += [-(k + 0.5) * st.lane_width for k in range(st.lanes_left)]
    for x in lanes:
        oncoming = x < 0
        speed = (-1.0 if oncoming else 1.0) * rng.uniform(5.0, 13.0) * moving
        z = rng.uniform(-10.0, 25.0)
        if x == st.ego_x:
            z = max(z, 10.0 + max(0.0, (ego[0] - speed) * ego[1]))
        while z < z_max:
            out.append(_car(rng, x, z, speed, oncoming))
            z += rng.uniform(14.0, 45.0)
    for side in (-1, 1):
        edge = st.road_right - st.parking - 0.7 if side > 0 else st.road_left + st.parking + 0.7
        for z in rng.uniform(z_min, z_max, int((z_max - z_min) / 50.0)):
            out.append(_cyclist(rng, edge, z, side * rng.uniform(3.0, 6.0) * moving, float(side)))
        kerb, line = _kerb_x(st, side), st.building_right if side > 0 else st.building_left
        for z in rng.uniform(z_min, z_max, int((z_max - z_min) / 14.0)):
            speed = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6) * (rng.random() < 0.8) * moving
            out.append(_pedestrian(rng, kerb + side * rng.uniform(0.6, abs(line - kerb) - 0.4), z, speed))
    return out


def _landmarks(rng: np.random.Generator, st: _Street, moving: bool) -> list[_Sprite]:
    """Objects of every class close ahead of the start, so that each class is seen at a useful size.

    A sign post, a pedestrian and a cyclist on the right, a street light, a fence and a tree on the left.
    """
    right, left = _kerb_x(st, 1), _kerb_x(st, -1)
    out = _sign_post(rng, right + 0.3, rng.uniform(9.0, 13.0))
    out.append(_pole(rng, left - 0.35, rng.uniform(14.0, 20.0), -1, light=True))
    out.append(_pedestrian(rng, right + rng.uniform(0.8, 1.5), rng.uniform(11.0, 17.0), 1.2 if moving else 0.0))
    edge = st.road_right - st.parking - 0.7
    out.append(_cyclist(rng, edge, rng.uniform(8.0, 11.0), rng.uniform(3.0, 5.0) * moving, 1.0, rear=True))
    out.append(_fence(rng, left - 0.15, rng.uniform(5.0, 8.0), rng.uniform(15.0, 25.0), -1))
    out.append(_tree(rng, left - rng.uniform(0.8, 1.2), rng.uniform(22.0, 32.0)))
    return out


@dataclass
class RenderedView:
    """One rendered view of a ``DrivingScene``.

    ``image``: ``(H, W, 3)`` float32 RGB in 0..255. ``labels``: ``(H, W)`` uint8 CamVid class ids. ``surface``:
    ``(H, W)`` int32 index of the scene surface seen (-1: sky). ``coords``: ``(2, H, W)`` float32 where on that
    surface: its local ``(u, v)`` in metres, or for the sky the world direction ``(x / z, y / z)`` (cameras look
    down the street, z > 0); ``DrivingScene.locate`` maps them into any camera's image.
    """

    image: np.ndarray
    labels: np.ndarray
    surface: np.ndarray
    coords: np.ndarray

    @classmethod
    def empty(cls, height: int, width: int) -> RenderedView:
        """Return a view where every pixel sees the sky (black until painted)."""
        return cls(
            image=np.zeros((height, width, 3), np.float32),
            labels=np.full((height, width), _ID["Sky"], np.uint8),
            surface=np.full((height, width), _SKY, np.int32),
            coords=np.zeros((2, height, width), np.float32),
        )


def _clip_near(corners: np.ndarray) -> np.ndarray:
    """Return the part of a ``(4, 3)`` camera-space polygon at depth >= ``_NEAR`` (Sutherland-Hodgman), ``(K, 3)``."""
    out = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        if a[2] >= _NEAR:
            out.append(a)
        if (a[2] >= _NEAR) != (b[2] >= _NEAR):
            out.append(a + (_NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out).reshape(-1, 3)


def _pixel_boxes(cam: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Row and column ranges ``(y0, y1, x0, x1)``, ``(K, 4)`` int, of the pixels that ``K`` polygons may cover.

    The polygons are in camera space, ``(K, M, 3)``, with all vertices at depth >= ``_NEAR``. The ranges have a
    one-pixel margin and are clamped to the image (empty where ``y0 >= y1`` or ``x0 >= x1``).
    """
    x = camera.focal * cam[..., 0] / cam[..., 2] + (camera.width - 1) / 2
    y = camera.focal * cam[..., 1] / cam[..., 2] + (camera.height - 1) / 2
    low = np.floor(np.stack([y.min(axis=1), x.min(axis=1)], axis=1))
    high = np.ceil(np.stack([y.max(axis=1), x.max(axis=1)], axis=1)) + 1
    size = np.array([camera.height, camera.width])
    low, high = np.clip(low, 0, size).astype(int), np.clip(high, 0, size).astype(int)
    return np.stack([low[:, 0], high[:, 0], low[:, 1], high[:, 1]], axis=1)


class DrivingScene:
    """A procedural street (see ``driving_clip``): sprites, an infinite road plane and a sky at infinity.

    The ``sprites`` come with their painters; the road plane has surface id ``len(sprites)``. ``render`` draws any
    ``PinholeCamera`` view at any time.
    """

    def __init__(self, street: _Street, sprites: list[_Sprite], noise: _Noise, cloudiness: float) -> None:
        self.street = street
        self.sprites = sprites
        self.noise = noise
        self.cloudiness = cloudiness
        self.ground = _Sprite(
            "ground",
            np.array([0.0, _CAMERA_HEIGHT, 0.0]),
            _X_AXIS,
            _Z_AXIS,
            (-np.inf, np.inf, -np.inf, np.inf),
            np.zeros(3, np.float32),
            np.zeros(3),
            {},
        )
        self._corners = np.stack([s.corners() for s in sprites])
        self._velocity = np.stack([s.velocity for s in sprites])
        surfaces = [*sprites, self.ground]
        sky = (np.array([0.0, 0.0, 1.0]), _X_AXIS, -_UP)
        self._frames = np.stack([*(np.stack([s.origin, s.axis_u, s.axis_v]) for s in surfaces), np.stack(sky)])
        self._w = np.array([1.0] * len(surfaces) + [0.0])

    @classmethod
    def generate(
        cls, seed: int = 0, length: float = 120.0, ego: tuple[float, float] = (8.0, 1.0), moving_objects: bool = True
    ) -> DrivingScene:
        """Generate a random street, deterministic in ``seed``, furnished over ``length`` metres ahead of the start.

        ``ego``: camera speed (m/s) and clip duration (s), to keep cars in the camera's lane out of its way;
        ``moving_objects=False`` stops every car, cyclist and pedestrian.
        """
        rng = np.random.default_rng(seed)
        street = _random_street(rng, length)
        z_min, z_max = -20.0, length
        sprites = _buildings(rng, street, z_min, z_max + 40.0)
        sprites += _furniture(rng, street, z_min, z_max)
        sprites += _parked_cars(rng, street, z_min, z_max)
        sprites += _traffic(rng, street, (z_min, z_max), ego, moving_objects)
        sprites += _landmarks(rng, street, moving_objects)
        haze = _jitter(rng, ((150, 160, 175), (170, 170, 170), (140, 150, 150)), 10.0)
        sprites.append(_upright("backdrop", 0.0, z_max + 60.0, (1200.0, 60.0), haze))
        return cls(street, sprites, _Noise(rng), rng.uniform(-0.3, 0.15))

    def render(self, camera: PinholeCamera, time: float = 0.0) -> RenderedView:
        """Draw the view of ``camera`` at ``time`` seconds.

        Sprites go nearest first into a depth buffer, then the road plane, then the sky wherever nothing else was hit.
        """
        view = RenderedView.empty(camera.height, camera.width)
        depth = np.full((camera.height, camera.width), np.inf, np.float32)
        rays = camera.rays()
        for nearest, index, (y0, y1, x0, x1) in sorted(self._visible(camera, time)):
            if depth[y0:y1, x0:x1].max() > nearest:
                self._draw(view, depth, rays, camera, time, index, (y0, y1, x0, x1))
        top = int(np.clip(np.floor(camera.horizon_row()), 0, camera.height))
        self._draw(view, depth, rays, camera, time, len(self.sprites), (top, camera.height, 0, camera.width))
        sky = view.surface == _SKY
        directions = rays[:, sky]
        view.image[sky] = _paint_sky(directions.T, camera.focal, self.noise, self.cloudiness)
        view.coords[:, sky] = directions[[0, 1]] / directions[2]
        return view

    def locate(
        self, view: RenderedView, camera: PinholeCamera, rows: slice = slice(None)
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the scene points seen in ``rows`` of ``view`` are at time 0 in the image of ``camera``.

        ``x``, ``y`` in pixels and camera depth in metres (for the sky: of the direction ``(x / z, y / z, 1)``), each
        ``(rows, W)`` float32; depth <= 0: behind the camera, ``x`` and ``y`` meaningless. Each surface maps its
        ``(u, v, 1)`` to the image by one 3 x 3 matrix: its point ``origin + u * axis_u + v * axis_v`` (or sky
        direction) through the camera's rotation and focal length.
        """
        f, cx, cy = camera.focal, (camera.width - 1) / 2, (camera.height - 1) / 2
        project = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]]) @ camera.rotation()
        frames = self._frames.copy()
        frames[:, 0] -= self._w[:, None] * camera.centre
        matrices = np.einsum("ij,skj->sik", project, frames[:, [1, 2, 0]]).astype(np.float32).reshape(-1, 9)
        m = matrices[view.surface[rows]]
        u, v = view.coords[0, rows], view.coords[1, rows]
        h = [m[..., 3 * k] * u + m[..., 3 * k + 1] * v + m[..., 3 * k + 2] for k in range(3)]
        safe = np.where(np.abs(h[2]) > 1e-6, h[2], np.float32(1e-6))
        return h[0] / safe, h[1] / safe, h[2]

    def _visible(self, camera: PinholeCamera, time: float) -> list[tuple[float, int, tuple[int, int, int, int]]]:
        """``(nearest depth, sprite index, pixel box)`` of every sprite that may be seen at ``time``."""
        corners = self._corners + time * self._velocity[:, None, :]
        cam = (corners - camera.centre) @ camera.rotation().T
        depth = cam[..., 2]
        seen = depth.max(axis=1) >= _NEAR
        whole = np.flatnonzero(seen & (depth.min(axis=1) >= _NEAR))
        nearest = list(depth[whole].min(axis=1))
        boxes = list(_pixel_boxes(cam[whole], camera))
        indices = list(whole)
        for index in np.flatnonzero(seen & (depth.min(axis=1) < _NEAR)):
            polygon = _clip_near(cam[index])
            nearest.append(_NEAR)
            boxes.append(_pixel_boxes(polygon[None], camera)[0])
            indices.append(index)
        return [
            (float(z), int(i), tuple(int(b) for b in box))
            for z, i, box in zip(nearest, indices, boxes, strict=True)
            if box[0] < box[1] and box[2] < box[3]
        ]

    def _surface(self, index: int) -> _Sprite:
        return self.ground if index == len(self.sprites) else self.sprites[index]

    def _paint(self, sprite: _Sprite, u: np.ndarray, v: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the painter of ``sprite`` in chunks of ``_CHUNK`` points.

        The painters' many temporaries then stay in cache and in the allocator's heap (large arrays are mapped and
        unmapped, page by page, every time).
        """
        if sprite.kind == "ground":
            painter = functools.partial(_paint_ground, self.street)
        else:
            painter = functools.partial(_PAINTERS[sprite.kind], sprite)
        if u.size <= _CHUNK:
            return painter(u, v, fp, self.noise)
        parts = [
            painter(u[i : i + _CHUNK], v[i : i + _CHUNK], fp[:, i : i + _CHUNK], self.noise)
            for i in range(0, u.size, _CHUNK)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _draw(
        self,
        view: RenderedView,
        depth: np.ndarray,
        rays: np.ndarray,
        camera: PinholeCamera,
        time: float,
        index: int,
        box: tuple[int, int, int, int],
    ) -> None:
        """Intersect the rays of pixel ``box`` with surface ``index``; paint the pixels where it is the nearest.

        Planes are axis-aligned, so the ray depth is one division and the local coordinates one multiply-add.
        """
        sprite = self._surface(index)
        y0, y1, x0, x1 = box
        (iu, su), (iv, sv), axis = sprite.axes
        offset = (camera.centre - sprite.origin - time * sprite.velocity).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -offset[axis] / rays[axis, y0:y1, x0:x1]
        ys, xs = np.nonzero((s > _NEAR) & (s < depth[y0:y1, x0:x1]))
        s = s[ys, xs]
        pixel = (ys + y0) * camera.width + (xs + x0)
        d = rays.reshape(3, -1)[:, pixel]
        u = su * (d[iu] * s + offset[iu])
        v = sv * (d[iv] * s + offset[iv])
        u0, u1, v0, v1 = sprite.extent
        inside = (u >= u0) & (u < u1) & (v >= v0) & (v < v1)
        if not inside.all():
            pixel, s, d, u, v = pixel[inside], s[inside], d[:, inside], u[inside], v[inside]
        if pixel.size == 0:
            return
        length = np.sqrt(np.einsum("ij,ij->j", d, d))
        across = s * length / camera.focal
        along = across * length / np.maximum(np.abs(d[axis]), 1e-6)
        footprint = np.stack([along if iu == 2 else across, along if iv == 2 else across])
        labels, rgb = self._paint(sprite, u, v, footprint)
        keep = labels != _CLEAR
        if not keep.all():
            pixel, s, labels, rgb, u, v = pixel[keep], s[keep], labels[keep], rgb[keep], u[keep], v[keep]
        depth.reshape(-1)[pixel] = s
        view.labels.reshape(-1)[pixel] = labels
        view.image.reshape(-1, 3)[pixel] = rgb
        view.surface.reshape(-1)[pixel] = index
        coords = view.coords.reshape(2, -1)
        coords[0, pixel] = u
        coords[1, pixel] = v


def _check_driving_args(width: int, height: int, num_frames: int, ego: EgoMotion, fps: float) -> None:
    """Raise ``ValueError`` for an invalid size, frame count, frame rate or speed.

    Invalid are: a size under 16 pixels, no frames, a non-finite or non-positive frame rate, or a non-finite or
    negative speed.
    """
    if width < 16 or height < 16 or num_frames < 1:
        raise ValueError(f"need width, height >= 16 and at least one frame, got {width}x{height}x{num_frames}")
    values = (fps, ego.speed, ego.yaw_rate, ego.lateral_speed)
    if not all(np.isfinite(values)) or fps <= 0 or ego.speed < 0:
        raise ValueError(f"need finite fps > 0 and speed >= 0, got fps={fps}, {ego}")


def _check_trajectory(x: np.ndarray, heading: np.ndarray) -> None:
    """Raise ``ValueError`` if the camera leaves the road's limits at some frame.

    The limits bound the camera's sideways offset ``x`` (metres) and its ``heading`` (radians).
    """
    if np.abs(x).max() > _MAX_LATERAL or np.abs(heading).max() > _MAX_HEADING:
        raise ValueError(
            f"the camera drifts {np.abs(x).max():.1f} m sideways and turns {np.abs(heading).max():.2f} rad over the "
            f"clip; at most {_MAX_LATERAL} m and {_MAX_HEADING} rad keep it on the road: lower yaw_rate, "
            "lateral_speed or the clip length"
        )


def _bilinear_taps(x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the two integer neighbours a bilinear sample at ``x`` (pixels) reads, within ``[0, size)``.

    A neighbour of weight under ``_ROUNDING`` is replaced by the other one.
    """
    low = np.floor(x)
    frac = x - low
    first = np.where(frac > 1.0 - _ROUNDING, low + 1, low)
    second = np.where(frac > _ROUNDING, low + 1, low)
    return tuple(np.clip(t, 0, size - 1).astype(np.int64) for t in (first, second))


def _correspondence(
    scene: DrivingScene, view: RenderedView, key: RenderedView, camera: PinholeCamera
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement from each pixel of ``view`` to its scene point in the ``key`` view, and its validity.

    The displacement is ``(2, H, W)`` float32 (pixels) to where the scene point is in the ``key`` view of ``scene``
    seen by ``camera`` at time 0 (0 where the point is behind the camera). The validity is ``(H, W)`` bool: the point
    is in front of the camera, inside the image, and the key view sees that same surface at all pixels a bilinear
    sample there reads. Works in blocks of rows, to stay in cache.
    """
    height, width = view.surface.shape
    displacement = np.zeros((2, height, width), np.float32)
    valid = np.zeros((height, width), bool)
    cols = np.arange(width, dtype=np.float32)[None, :]
    step = max(1, _CHUNK // width)
    for top in range(0, height, step):
        rows = slice(top, top + step)
        x, y, depth = scene.locate(view, camera, rows)
        front = depth > 1e-3
        inside = front & (x >= -_ROUNDING) & (x <= width - 1 + _ROUNDING)
        inside &= (y >= -_ROUNDING) & (y <= height - 1 + _ROUNDING)
        for yy in _bilinear_taps(y, height):
            for xx in _bilinear_taps(x, width):
                inside &= key.surface[yy, xx] == view.surface[rows]
        valid[rows] = inside
        displacement[0, rows] = np.where(front, x - cols, 0.0)
        displacement[1, rows] = np.where(front, y - np.arange(top, top + x.shape[0], dtype=np.float32)[:, None], 0.0)
    return displacement, valid


def driving_clip(
    width: int,
    height: int,
    num_frames: int,
    seed: int = 0,
    ego: EgoMotion = EgoMotion(),
    fps: float = 30.0,
    moving_objects: bool = True,
) -> SyntheticClip:
    """Render a labelled clip driving down a procedural street, with exact per-pixel motion to frame 0.

    The street (deterministic in ``seed``): a road in perspective with 2 to 4 lanes, dashed lane markings, edge
    lines, zebra crossings, parking strips and kerbs; paved pavements; rows of buildings with windows, shop fronts
    and side streets; trees, street lights, sign posts with signs or traffic lights, fences, bins; parked cars,
    cars driving in every lane at their own speeds (oncoming on the left), cyclists along the road edges,
    pedestrians walking the pavements; a sky with clouds; hazy far-away blocks at the end of the street (Void).
    The camera, 1.4 m above the road with a 67 degree horizontal field of view, moves by ``ego`` (m/s, rad/s) at
    ``fps`` frames per second; it must stay within 3 m of its lane centre and 0.35 rad of the street direction
    (the default ``EgoMotion`` allows clips up to 10 s). ``moving_objects=False`` stops all traffic. A clip of at
    least 240 x 180 pixels shows every CamVid class in frame 0 (objects of every class are placed 5-35 m ahead of
    the start).

    Returns a ``SyntheticClip`` whose ``frames`` are ``(T, H, W, 3)`` uint8 RGB, ``labels`` ``(T, H, W)`` uint8
    ``CAMVID`` ids, ``displacement`` ``(T, 2, H, W)`` float32 pixels from each pixel of frame t to its scene point
    in frame 0, and ``valid`` ``(T, H, W)`` bool where that point is visible in frame 0. Raises ``ValueError`` for
    sizes under 16 pixels, no frames, non-positive ``fps``, negative speed or a camera path leaving the road.
    """
    _check_driving_args(width, height, num_frames, ego, fps)
    times = np.arange(num_frames, dtype=np.float64) / fps
    dx, dz, heading = ego_trajectory(ego, times)
    _check_trajectory(dx, heading)
    scene = DrivingScene.generate(seed, float(dz.max()) + 120.0, (ego.speed, float(times[-1])), moving_objects)
    cameras = [
        PinholeCamera(width, height, scene.street.ego_x + float(x), float(z), float(yaw))
        for x, z, yaw in zip(dx, dz, heading, strict=True)
    ]
    views = [scene.render(camera, float(t)) for camera, t in zip(cameras, times, strict=True)]
    displacement = np.zeros((num_frames, 2, height, width), np.float32)
    valid = np.ones((num_frames, height, width), bool)
    for t in range(1, num_frames):
        displacement[t], valid[t] = _correspondence(scene, views[t], views[0], cameras[0])
    logger.debug(
        "driving clip %dx%dx%d seed %d: %.1f%% of pixels valid", width, height, num_frames, seed, 100 * valid.mean()
    )
    return SyntheticClip(
        frames=np.stack([np.clip(v.image + 0.5, 0, 255).astype(np.uint8) for v in views]),
        labels=np.stack([v.labels for v in views]),
        displacement=displacement,
        valid=valid,
    )
