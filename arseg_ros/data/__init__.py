"""Data sources: synthetic labelled video with known motion."""
