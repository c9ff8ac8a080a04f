# monocri — the two commands: `make run` and `make test` do every set-up step on a fresh Debian 12.
#
#   make deps     install the Debian packages the build and the tests need (skips installed ones)
#   make          build into build/ (binaries in build/bin/)
#   make run      build and start the daemon in the foreground with defaults
#   make test     build and run every test (unit, integration, interop, fuzz smoke)
#   make asan     ASan + UBSan build in build-asan/, and the test suite against it
#   make fuzz     libFuzzer targets (clang) in build-fuzz/, each run for FUZZ_SECONDS
#   make bench    the benchmarks under bench/, figures side by side with their peers
#   make install  PREFIX=/usr/local: binaries, default config, systemd unit
#   make format   clang-format every C++ source

PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
BUILD_TYPE  ?= RelWithDebInfo
JOBS        ?= $(shell nproc)
FUZZ_SECONDS ?= 60
RUN_ARGS    ?=

# Build, test and benchmark dependencies, all from Debian's archive.
DEB_PACKAGES := \
	build-essential cmake pkg-config clang libclang-rt-14-dev clang-format \
	libuv1-dev libnghttp2-dev libprotobuf-dev protobuf-compiler \
	libseccomp-dev libcap-dev libjemalloc-dev libgtest-dev libgmock-dev \
	libcurl4-openssl-dev libarchive-dev libssl-dev zlib1g-dev libzstd-dev \
	nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev \
	libhttp-parser-dev libwslay-dev libyaml-cpp-dev \
	runc crun conmon containerd containernetworking-plugins docker-registry skopeo busybox-static \
	umoci zstd \
	python3 python3-grpcio python3-protobuf python3-websocket python3-h2 python3-pytest python3-yaml \
	python3-bcrypt python3-jwt python3-cryptography python3-zstandard \
	iproute2 iptables util-linux procps

.PHONY: all build deps run test test-only asan fuzz bench install format clean

all: build

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build build -j $(JOBS)

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $$missing || \
	    { apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	else echo "make deps: all Debian packages present"; fi

run: deps build
	exec build/bin/monocri $(RUN_ARGS)

test: deps build test-only

# Tests against an existing build/ (CI and developers use `make test`).
test-only:
	cd build && ctest --output-on-failure --timeout 900

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMONOCRI_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure --timeout 1800

fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMONOCRI_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
	cmake --build build-fuzz -j $(JOBS) --target fuzz-targets
	tests/fuzz/run-fuzzers.sh build-fuzz/bin $(FUZZ_SECONDS)

bench: deps build
	build/bin/bench-grpc-version
	tests/harness/in-namespace /usr/bin/python3 bench/image_pull_bench.py
	tests/harness/in-namespace /usr/bin/python3 bench/pod_start_bench.py
	tests/harness/in-namespace /usr/bin/python3 bench/cni_pod_bench.py
	tests/harness/in-namespace /usr/bin/python3 bench/density_bench.py --counts 100,500
	tests/harness/in-namespace /usr/bin/python3 bench/log_throughput_bench.py
	tests/harness/in-namespace /usr/bin/python3 bench/log_throughput_bench.py --journal off
	tests/harness/in-namespace /usr/bin/python3 bench/exec_sync_bench.py
	tests/harness/in-namespace /usr/bin/python3 bench/exec_stream_bench.py

install: build
	install -D -s -m 0755 build/bin/monocri $(DESTDIR)$(PREFIX)/bin/monocri
	install -D -s -m 0755 build/bin/monoctl $(DESTDIR)$(PREFIX)/bin/monoctl
	install -D -s -m 0755 build/bin/monocri-image-worker $(DESTDIR)$(PREFIX)/bin/monocri-image-worker
	install -D -s -m 0755 build/bin/monocri-pod-init $(DESTDIR)$(PREFIX)/bin/monocri-pod-init
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/monocri/monocri.toml ]; then \
	  install -D -m 0644 config/monocri.toml $(DESTDIR)$(SYSCONFDIR)/monocri/monocri.toml; \
	else echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/monocri/monocri.toml"; fi
	sed 's|@BINDIR@|$(PREFIX)/bin|g' config/monocri.service.in > build/monocri.service
	install -D -m 0644 build/monocri.service $(DESTDIR)$(SYSCONFDIR)/systemd/system/monocri.service
	@echo "installed; enable with: systemctl daemon-reload && systemctl enable --now monocri"

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf build build-asan build-fuzz
