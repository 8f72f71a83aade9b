"""Class lists, palettes and colourisation."""

import numpy as np
import pytest

from arseg_ros.labels import CAMVID, CITYSCAPES, IGNORE_ID, LabelSet, colorize, get_label_set, overlay


def test_builtin_lists():
    assert CAMVID.num_classes == 12 and CAMVID.names[-1] == "Void"
    assert CITYSCAPES.num_classes == 19 and CITYSCAPES.names[0] == "road"
    assert get_label_set("camvid") is CAMVID
    with pytest.raises(ValueError, match="unknown class list"):
        get_label_set("mars")


def test_colorize_uses_the_palette_and_blacks_out_ignore():
    labels = np.array([[0, 3], [IGNORE_ID, 11]], np.uint8)
    rgb = colorize(labels, CAMVID)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 128, 128) and tuple(rgb[0, 1]) == (128, 64, 128)
    assert tuple(rgb[1, 0]) == (0, 0, 0)
    with pytest.raises(ValueError, match=r"\(H, W\) uint8"):
        colorize(labels.astype(np.int32), CAMVID)


def test_overlay_blends_and_keeps_ignored_pixels():
    image = np.full((1, 2, 3), 100, np.uint8)
    labels = np.array([[3, IGNORE_ID]], np.uint8)
    out = overlay(image, labels, CAMVID, alpha=0.5)
    assert tuple(out[0, 0]) == (114, 82, 114)
    assert tuple(out[0, 1]) == (100, 100, 100)


def test_dict_round_trip_and_malformed():
    assert LabelSet.from_dict(CITYSCAPES.to_dict()) == CITYSCAPES
    with pytest.raises(ValueError, match="malformed class list"):
        LabelSet.from_dict({"name": "x", "classes": [{"name": "a"}]})
