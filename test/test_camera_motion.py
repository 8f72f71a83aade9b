"""Synthetic camera motion for stills: what a moved frame shows beyond the still."""

import numpy as np

from arseg_ros.data.camera_motion import CameraMotion, still_clip
from arseg_ros.labels import CAMVID, IGNORE_ID, colorize

H, W = 48, 64


def pan(dx: int, dy: int) -> CameraMotion:
    return CameraMotion(zoom=1.0, angle=0.0, shift=(float(dx), float(dy)), height=H, width=W)


def test_a_pan_mirrors_the_still_at_its_edge():
    still = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    moved = pan(5, -3).render(still)
    np.testing.assert_array_equal(moved[: H - 3, 5:], still[3:, : W - 5])
    # Column x < 5 of the moved frame comes from x - 5 in the still: mirrored at the left edge, still[:, 4 - x].
    np.testing.assert_array_equal(moved[: H - 3, :5], still[3:, 4::-1])
    # Row y >= H - 3 comes from y + 3: mirrored at the bottom edge.
    np.testing.assert_array_equal(moved[H - 3 :, 5:], still[: H - 4 : -1, : W - 5])


def test_labels_move_and_mirror_with_the_image():
    labels = np.random.default_rng(1).integers(0, 11, (H, W), dtype=np.uint8)
    labels[:4, :4] = IGNORE_ID
    for motion in (pan(7, 4), pan(-6, 2)):
        moved = motion.render_labels(labels)
        np.testing.assert_array_equal(colorize(moved, CAMVID), motion.render(colorize(labels, CAMVID)))


def test_a_zoomed_out_keyframe_has_no_black_border_and_no_unlabelled_band():
    rng = np.random.default_rng(2)
    still = rng.integers(40, 256, (H, W, 3), dtype=np.uint8)
    labels = rng.integers(0, 11, (H, W), dtype=np.uint8)
    motion = CameraMotion(zoom=0.8, angle=0.03, shift=(4.0, -2.0), height=H, width=W)
    frames, key_labels, displacement = still_clip(still, labels, 4, motion)
    assert frames.shape == (5, H, W, 3) and displacement.shape == (2, H, W)
    np.testing.assert_array_equal(frames[-1], still)
    assert frames[:-1].max(-1).min() >= 40  # the darkest pixel is the still's, not a fill
    assert key_labels.max() < 11
