# songkit: set-up, demo, tests, benchmarks and the shipped default checkpoints.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
RUNS ?= runs

.PHONY: install demo test test-slow bench checkpoints checkpoint-generate bench-generate clean

# torch first, pinned: the CPU wheel on disk (an unpinned torch pulls GBs of CUDA packages)
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'

# the main job on the embedded default: print a generated tune (no download, no data)
demo: install
	songkit generate --temperature 0.8 --seed 1

test: install
	$(PYTHON) -m pytest

test-slow: install
	$(PYTHON) -m pytest -m slow

bench: bench-generate

checkpoints: checkpoint-generate

# SongRNN on music21's ~13,000 ABC tunes (about 25 CPU-minutes on 2 cores)
checkpoint-generate:
	mkdir -p $(RUNS)
	songkit train generate --out $(RUNS)/generate-default --epochs 12 --batch-size 64 --seq-len 128 \
		--hidden-size 256 --num-layers 2 --lr 3e-3 --warmup-steps 200 --seed 0 > $(RUNS)/generate-default.log 2>&1 || \
		(tail -5 $(RUNS)/generate-default.log; exit 1)
	cp $(RUNS)/generate-default/best.ckpt src/songkit/tasks/generate/weights/default.ckpt

bench-generate:
	$(PYTHON) bench/bench_generate.py

clean:
	rm -rf $(RUNS) .pytest_cache
