# Thin wrapper over CMake. `make` builds build/soju; `make test` runs ctest;
# `make bench` runs the benchmarks; `make fuzz` builds and briefly runs the fuzzers.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build test bench fuzz clean demo

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

bench: build
	bash bench/run.sh

fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

demo: build
	bash scripts/demo.sh

clean:
	rm -rf $(BUILD) build-fuzz
