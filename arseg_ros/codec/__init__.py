"""Compressed video: packets, decoding, HEVC bitstream parsing and motion fields."""
