"""The AR-Seg networks: backbones, heads, CReFF, the AR-Seg wrapper, checkpoints and compute accounting."""

from .arseg import ARSeg, SharedClassifier
from .base import SegmentationNetwork, SegOutput
from .checkpoint import CheckpointError, load_checkpoint, load_weights, read_checkpoint, save_checkpoint
from .config import ARCHITECTURES, ModelConfig, build_model, build_network
from .creff import CReFF, LocalAttention, local_attention, warp
from .loading import load_arseg, resolve_model_path

__all__ = [
    "ARCHITECTURES",
    "ARSeg",
    "CReFF",
    "CheckpointError",
    "LocalAttention",
    "ModelConfig",
    "SegOutput",
    "SegmentationNetwork",
    "SharedClassifier",
    "build_model",
    "build_network",
    "load_arseg",
    "load_checkpoint",
    "load_weights",
    "local_attention",
    "read_checkpoint",
    "resolve_model_path",
    "save_checkpoint",
    "warp",
]
