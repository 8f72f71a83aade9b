"""Labelled synthetic video with exactly known motion.

``panning_clip`` renders a street-like scene (sky, buildings, trees, road, pavement, poles, cars) with
per-class textures on a canvas larger than the frame, and moves a camera window across it at a constant
velocity. Because the motion is a pure translation, the displacement from every pixel of frame ``t`` to the
keyframe (frame 0) is exactly ``t * velocity``; that makes the clip a ground truth for motion accumulation
and warping, and a small labelled input for demos and tests. Class ids follow ``arseg_ros.labels.CAMVID``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..labels import CAMVID

_ID = {c.name: i for i, c in enumerate(CAMVID.classes)}


@dataclass
class SyntheticClip:
    """``frames``: ``(T, H, W, 3)`` uint8 RGB. ``labels``: ``(T, H, W)`` uint8 CamVid class ids.
    ``displacement``: ``(T, 2, H, W)`` float32, pixels from each pixel of frame t to its position in frame 0
    (``(dx, dy)``, backward-warp convention of ``arseg_ros.model.creff``)."""

    frames: np.ndarray
    labels: np.ndarray
    displacement: np.ndarray


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
    """A street scene canvas: ``(height, width, 3)`` float32 RGB in 0..255 and ``(height, width)`` uint8 labels."""
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
    """A clip of ``num_frames`` frames whose camera pans ``velocity = (vx, vy)`` pixels per frame.

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
