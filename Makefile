# songkit: set-up, demo, tests, benchmarks and the shipped default checkpoints.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
RUNS ?= runs

.PHONY: install demo test test-slow lint fuzz-long cv-chords bench bench-train checkpoints checkpoint-generate bench-generate checkpoint-chords bench-chords checkpoint-segment bench-segment clean bench-deps bench-tokenize bench-instrument checkpoint-tokenize checkpoint-instrument data-instrument embedded-instrument loso-instrument loco-generate beats-chords

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

bench: bench-train bench-generate bench-instrument bench-tokenize bench-chords bench-segment

# every task's training items/s, default path (bf16 where the CPU has it) vs --no-amp, in one run
bench-train:
	$(PYTHON) bench/bench_train.py --emulated-bf16

# the references the benchmarks compare against, installed for benchmarks only (never dependencies);
# torch stays pinned so that nothing pulls a CUDA build
bench-deps:
	$(PIP) install -q librosa miditok torch==2.13.0

checkpoints: checkpoint-generate checkpoint-instrument checkpoint-tokenize checkpoint-chords checkpoint-segment

# SongRNN on music21's ~13,000 ABC tunes (2,100 steps of 64 x 128 characters, about 5.5 passes; ~30 minutes on 2 cores)
checkpoint-generate:
	mkdir -p $(RUNS)
	songkit train generate --out $(RUNS)/generate-default --epochs 14 --max-steps-per-epoch 150 --batch-size 64 --seq-len 128 \
		--hidden-size 512 --num-layers 2 --lr 3e-3 --warmup-steps 100 --ema 0 --vocab corpus --seed 0 --force \
		> $(RUNS)/generate-default.log 2>&1 || \
		(tail -5 $(RUNS)/generate-default.log; exit 1)
	# float16 storage: half the file, the same bits/char (docs/generate.md)
	$(PYTHON) -c "from songkit.core.checkpoint import ship_checkpoint as s; \
		s('$(RUNS)/generate-default/best.ckpt', 'src/songkit/tasks/generate/weights/default.ckpt', task='generate')"

bench-generate:
	$(PYTHON) bench/bench_generate.py
	$(PYTHON) bench/bench_generate.py --precision

# leave-one-collection-out inside music21's corpus at a reduced budget (300 steps of 32 x 128 per run; docs/generate.md)
loco-generate:
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_generate_loco.py --out $(RUNS)/loco --recipe old --recipe wide \
		--epochs 3 --steps 100 --eval-tunes 300

# instrument: NSynth-format notes rendered from every distinct General MIDI SoundFont Debian packages
# (`pip install -e .[soundfont]`; `apt-get install fluidsynth timgm6mb-soundfont fluid-soundfont-gm
# musescore-general-soundfont csound-soundfont opl3-soundfont`), one folder per SoundFont split by GM program
# (about 24,000 notes; 3-4 minutes on 2 cores). The shipped default: cnn2d on every training note of all five
# (17,465 notes, 6 epochs, best epoch on their valid programs; about 40 minutes on one core)
SF2 ?= /usr/share/sounds/sf2
SF3 ?= /usr/share/sounds/sf3
INSTRUMENT_SETS ?= $(RUNS)/instrument-sets
INSTRUMENT_SF = TimGM6mb FluidR3_GM MuseScore_General_HQ csound_GMbank OPL3_FM
data-instrument:
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_instrument_loso.py render --cache $(INSTRUMENT_SETS)

checkpoint-instrument: data-instrument
	OMP_NUM_THREADS=1 songkit train instrument $(foreach s,$(INSTRUMENT_SF),--data $(INSTRUMENT_SETS)/$(s)) \
		--model cnn2d --limit 0 --epochs 6 --seed 0 --workers 0 --force --out $(RUNS)/instrument-default \
		> $(RUNS)/instrument-default.log 2>&1 || (tail -5 $(RUNS)/instrument-default.log; exit 1)
	cp $(RUNS)/instrument-default/best.ckpt src/songkit/tasks/instrument/weights/default.ckpt

# leave-one-SoundFont-out for every model and recipe of docs/instrument.md (results cached per fold in
# $(INSTRUMENT_SETS)/results.jsonl; hours on 2 cores: run it in the background)
LOSO_RUNS = "cnn1d base" "cnn1d all_notes" "cnn1d aug_level" "cnn1d aug_timbre" "cnn1d pcen" "cnn2d base" \
	"linear base" "lstm base" "samplecnn base" "blstm base"
loso-instrument: data-instrument
	for spec in $(LOSO_RUNS); do set -- $$spec; OMP_NUM_THREADS=1 $(PYTHON) bench/bench_instrument_loso.py run \
		--cache $(INSTRUMENT_SETS) --model $$1 --recipe $$2 --notes 1000 --epochs 3 --test-notes 600 || exit 1; done
	# the headline row: every training note of the four other SoundFonts, 6 epochs (~30 minutes a fold)
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_instrument_loso.py run --cache $(INSTRUMENT_SETS) --model cnn2d \
		--recipe all_notes --notes 0 --epochs 6 --test-notes 600
	$(PYTHON) bench/bench_instrument_loso.py table --cache $(INSTRUMENT_SETS)

# the embedded default set (3.6 MB of Ogg Vorbis): TimGM6mb train, FluidR3 valid/test
embedded-instrument:
	songkit data instrument --out $(RUNS)/nsynth-mini --soundfont $(SF2)/TimGM6mb.sf2 --soundfont $(SF2)/FluidR3_GM.sf2 \
		--pitch-step 3 --max-notes-per-instrument 2 --max-held-out-notes 1 --seed 7 \
		--pack src/songkit/tasks/instrument/assets/nsynth-mini.tar

bench-instrument:
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_instrument.py
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_instrument.py --memory --source $(INSTRUMENT_SETS)/TimGM6mb

# chords: cnn_blstm on the Billboard chroma (when ../shared/datasets/billboard is there) plus 60 rendered
# Bach chorales (chroma computed from audio, so the default also sees songkit's own audio features);
# the embedded chorales alone otherwise. About 6 CPU-minutes.
BILLBOARD ?= ../shared/datasets/billboard
POP909 ?= ../shared/datasets/pop909
SF2 ?= /usr/share/sounds/sf2
checkpoint-chords:
	mkdir -p $(RUNS)
	test -d $(RUNS)/chords-bach || songkit -q data chords --out $(RUNS)/chords-bach --limit 60
	# POP909 rendered (fluidsynth + Debian's SoundFonts): train/valid songs with three SoundFonts, and the test
	# songs with a fourth (MuseScore) that training never hears, for `eval chords --data $(RUNS)/pop/test`
	if [ -d $(POP909) ] && command -v fluidsynth >/dev/null; then \
		test -d $(RUNS)/pop/train || songkit -q data chords --pop909 $(POP909) --split train --split valid \
			--soundfont $(SF2)/FluidR3_GM.sf2 --soundfont $(SF2)/TimGM6mb.sf2 --soundfont $(SF2)/sf_GMbank.sf2 \
			--out $(RUNS)/pop/train; \
		test -d $(RUNS)/pop/test || songkit -q data chords --pop909 $(POP909) --split test \
			--soundfont /usr/share/sounds/sf3/MuseScore_General.sf3 --out $(RUNS)/pop/test; fi
	DATA="--data $(RUNS)/chords-bach"; \
	if [ -d $(BILLBOARD) ]; then DATA="$$DATA --data $(BILLBOARD)"; fi; \
	if [ -d $(RUNS)/pop/train ]; then DATA="$$DATA --data $(RUNS)/pop/train"; fi; \
	songkit train chords $$DATA --model cnn_blstm --epochs 16 --max-steps-per-epoch 250 --lr 2e-3 \
		--learn-transitions --every-song --seed 0 --force --out $(RUNS)/chords-default \
		> $(RUNS)/chords-default.log 2>&1 || (tail -5 $(RUNS)/chords-default.log; exit 1)
	cp $(RUNS)/chords-default/best.ckpt src/songkit/tasks/chords/weights/default.ckpt

bench-chords: bench-deps
	$(PYTHON) bench/bench_chords.py
	$(PYTHON) bench/bench_chords_library.py

# beat-synchronous decoding on the 51 held-out POP909 songs (MuseScore render), .beats files and tracked beats
beats-chords:
	test -d $(RUNS)/pop/test || songkit -q data chords --pop909 $(POP909) --split test \
		--soundfont /usr/share/sounds/sf3/MuseScore_General.sf3 --out $(RUNS)/pop/test
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_chords_beats.py $(RUNS)/pop/test

# 5-fold song-level cross-validation over the shared Billboard songs (the headline of docs/chords.md)
cv-chords:
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_chords_cv.py --data $(BILLBOARD) --models blstm --epochs 6 --steps 100 \
		--out $(RUNS)/chords-cv/blstm
	OMP_NUM_THREADS=1 $(PYTHON) bench/bench_chords_cv.py --data $(BILLBOARD) --models cnn_blstm --epochs 3 --steps 50 \
		--out $(RUNS)/chords-cv/cnn

clean:
	rm -rf $(RUNS) .pytest_cache

lint: install
	$(PYTHON) -m ruff check src tests bench

# the fuzz tests with many more cases than the default run
fuzz-long: install
	SONGKIT_FUZZ_SLOW_EXAMPLES=5000 $(PYTHON) -m pytest -m slow -k fuzz

# tokenize: NB + GRU on the Bach chorales (the embedded default: music21's MusicXML, converted once to
# MIDI in $$SONGKIT_HOME or ~/.cache/songkit); ~4 CPU-minutes with the conversion
checkpoint-tokenize:
	mkdir -p $(RUNS)
	OMP_NUM_THREADS=1 songkit train tokenize --encoding nb --model gru --out $(RUNS)/tokenize-default --epochs 6 \
		--max-steps-per-epoch 60 --batch-size 32 --seq-len 64 --d-model 128 --embed-dim 32 --lr 3e-3 --warmup-steps 20 \
		--seed 0 > $(RUNS)/tokenize-default.log 2>&1 || (tail -5 $(RUNS)/tokenize-default.log; exit 1)
	mkdir -p src/songkit/tasks/tokenize/weights
	cp $(RUNS)/tokenize-default/best.ckpt src/songkit/tasks/tokenize/weights/default.ckpt

# tokenize on POP909 (../shared/datasets/pop909): the whole dataset to a token dataset against MidiTok
# (process start included), first training step from a dataset vs MIDI, GRU precision, round trips
# (pip install miditok torch==2.13.0 for the comparison; never a dependency)
bench-tokenize: bench-deps
	$(PYTHON) bench/bench_tokenize.py

# a U-Net of width 16 on the embedded segmentation dataset (30 epochs of 25 steps, about 2.5 CPU-minutes);
# shipped weights stored as float16 (about 4 MB)
checkpoint-segment:
	mkdir -p $(RUNS)
	OMP_NUM_THREADS=1 songkit train segment --model unet --width 16 --out $(RUNS)/segment-default --force --epochs 30 --size 64 \
		--batch-size 8 --lr 4e-3 --seed 0 --device cpu > $(RUNS)/segment-default.log 2>&1 || \
		(tail -5 $(RUNS)/segment-default.log; exit 1)
	$(PYTHON) -c "from songkit.tasks.segment.train import export_checkpoint as e; \
		e('$(RUNS)/segment-default/best.ckpt', 'src/songkit/tasks/segment/weights/default.ckpt')"

bench-segment:
	$(PYTHON) bench/bench_segment.py
