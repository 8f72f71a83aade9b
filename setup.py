"""Build and install arseg_ros with pip (no ROS needed) or colcon (ament_python)."""

from glob import glob
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup

PACKAGE = "arseg_ros"

# Compile the C++ files of each extension in parallel: ARSEG_BUILD_JOBS processes, all cores when unset.
ParallelCompile("ARSEG_BUILD_JOBS", default=0).install()

# Fused CPU local attention for CReFF. Portable flags only: no -march (the binary must run on any x86_64 /
# aarch64; AVX2 kernels are compiled in a target region and chosen at run time) and no -ffast-math (it would
# change the softmax numerics and NaN handling).
LOCAL_ATTENTION = Pybind11Extension(
    f"{PACKAGE}.model._local_attention",
    ["arseg_ros/model/csrc/local_attention.cpp"],
    depends=["arseg_ros/model/csrc/local_attention_kernels.h"],
    cxx_std=17,
    extra_compile_args=["-O3"],
)

# The per-block loop of the motion accumulation (arseg_ros/codec/motion.py).
ACCUMULATE = Pybind11Extension(
    f"{PACKAGE}.codec._accumulate",
    ["arseg_ros/codec/csrc/accumulate.cpp"],
    cxx_std=17,
    extra_compile_args=["-O3"],
)

# Parse-only HEVC parser (bit reader, NAL, parameter sets, slice header, references, CABAC, slice data, motion
# derivation): every C++ file of arseg_ros/codec/hevc/ goes into one module. Same portable flags as above.
HEVC = Pybind11Extension(
    f"{PACKAGE}.codec._hevc",
    sorted(glob("arseg_ros/codec/hevc/*.cpp")),
    cxx_std=17,
    extra_compile_args=["-O2"],
)


TEST_REQUIRES = ["pytest>=7", "scipy"]


def share(folder: str, pattern: str) -> tuple[str, list[str]]:
    """Return an install rule: files of ``folder`` matching ``pattern`` go to ``share/arseg_ros/<folder>``."""
    return (f"share/{PACKAGE}/{folder}", sorted(glob(f"{folder}/{pattern}")))


setup(
    name=PACKAGE,
    version="0.1.0",
    description="AR-Seg semantic segmentation of HEVC/H.264 camera streams at a third of the compute, for ROS 2",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        share("launch", "*.launch.py"),
        share("config", "*.yaml"),
        share("config", "*.rviz"),
        share("config/train", "*.yaml"),
        share("config/prepare", "*.yaml"),
        share("models", "*.pt"),
        share("models", "*.md"),
    ],
    install_requires=[
        "numpy",
        "torch>=2.1",
        "av>=12",
        "rosbags>=0.10",
        "matplotlib",
        "pyyaml",
        "pillow",
        "tqdm",
    ],
    # dds: run the node and arseg-play on Cyclone DDS without a ROS installation (arseg_ros/ros/dds_node.py).
    # test: what the suite needs (colcon test finds pytest here); dev: test plus the linter.
    extras_require={
        "test": TEST_REQUIRES,
        "dev": [*TEST_REQUIRES, "ruff"],
        "dds": ["cyclonedds>=11,<12"],
    },
    ext_modules=[LOCAL_ATTENTION, ACCUMULATE, HEVC],
    cmdclass={"build_ext": build_ext},
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "arseg-flops = arseg_ros.model.flops:main",
            "arseg-demo = arseg_ros.demo:main",
            "arseg-segment = arseg_ros.segment:main",
            "arseg_node = arseg_ros.ros.node:main",
            "arseg-play = arseg_ros.ros.play:main",
            "arseg-train = arseg_ros.train:main",
            "arseg-eval = arseg_ros.evaluate:main",
            "arseg-prepare = arseg_ros.prepare:main",
            "arseg-bag = arseg_ros.bagtool:main",
        ],
    },
)
