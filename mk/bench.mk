# Benchmarks: `make bench` regenerates every table of bench/RESULTS.md (the prose around
# them is kept). Each part can be run alone; none runs in `make test`.
#   bench-keepalive      simulator: keep-alive policies × derived and held-out workloads (~10 CPU-min)
#   bench-keepalive-days simulator: history and pre-warm on multi-day workloads, then the
#                        held-out DAYS_FRESH (~50 + ~55 CPU-min at the full 10 + 6 seeds)
#   bench-store-ops      store operations per day vs the Firestore free tier (<1 min)
#   bench-control-plane  Service.handle() latency, SQLite and the Firestore emulator (<1 min)
#   bench-local          kill latency and idle detection on `yoyoctl local up` (~3 min)
#   bench-gateway        gateway overhead ÷ direct, release delay, a cold burst of 1000, 200 streams (~5 min)
#   bench-batch          batch worker throughput ÷ direct, VM-seconds per 1,000 lines (~2 min)
#   bench-capacity       simulator: wakes served within 5 min and $ per served hour, 1-3 zones (~3 min)
#   bench-scale          the kill and one tick at 10-1,000 pools on the Firestore emulator (~5 min)

BENCH_SEEDS ?= 10
BENCH_JOBS ?= 2
BENCH_KILLS ?= 20
BENCH_IDLES ?= 12

BENCH_DAYS_SEEDS ?= 10
BENCH_DAYS_FRESH_SEEDS ?= 6

.PHONY: bench bench-keepalive bench-keepalive-days bench-store-ops bench-control-plane bench-local bench-gateway bench-batch bench-capacity bench-scale

bench: bench-keepalive bench-keepalive-days bench-store-ops bench-control-plane bench-local bench-gateway bench-batch bench-capacity bench-scale

bench-keepalive: install
	$(PYTHON) bench/keepalive.py --seeds $(BENCH_SEEDS) --jobs $(BENCH_JOBS) --write
	$(PYTHON) bench/keepalive.py --fresh --jobs $(BENCH_JOBS) --write

bench-keepalive-days: install
	$(PYTHON) bench/keepalive_days.py --seeds $(BENCH_DAYS_SEEDS) --jobs $(BENCH_JOBS) --write
	$(PYTHON) bench/keepalive_days.py --fresh --seeds $(BENCH_DAYS_FRESH_SEEDS) --jobs $(BENCH_JOBS) --write

bench-store-ops: install
	$(PYTHON) bench/store_ops.py --write

bench-control-plane: install
	$(PYTHON) bench/control_plane.py --write

bench-local: install
	$(PYTHON) bench/local_stack.py --kills $(BENCH_KILLS) --idles $(BENCH_IDLES) --write

bench-gateway: install
	$(PYTHON) bench/gateway.py --warm 300 --colds 10 --burst 1000 --streams 200 --write

bench-batch: install
	$(PYTHON) bench/batch.py --lines 1000 --rounds 5 --write

bench-capacity: install
	$(PYTHON) bench/capacity.py --seeds 3 --days 30 --write

bench-scale: install
	$(PYTHON) bench/scale.py --write
