"""The instrument task's data side: NSynth layout reader, bad inputs, GM mapping and splits,
the embedded set, and (when FluidSynth is installed) the SoundFont renderer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songkit.core.errors import UserError
from songkit.tasks.instrument import data as D
from songkit.tasks.instrument import nsynth as N
from songkit.tasks.instrument import render as R
from songkit.tasks.instrument.constants import (
    FAMILIES,
    GM_FAMILY,
    NOTE_SAMPLES,
    SAMPLE_RATE,
)

SR = SAMPLE_RATE


# ----------------------------------------------------------------------------- helpers (used by the other tests)
def tone(family: str, pitch: int, seed: int = 0, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """A synthetic note whose timbre depends on the family: bass = low decaying sine, mallet = bright
    fast-decaying inharmonic strike, organ = sustained odd harmonics (a square-ish wave)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    if family == "bass":
        x = np.sin(2 * np.pi * f0 * t) * np.exp(-t * 1.5)
    elif family == "mallet":
        x = (np.sin(2 * np.pi * f0 * t) + 0.6 * np.sin(2 * np.pi * 3.93 * f0 * t)) * np.exp(-t * 9)
    else:  # organ
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 3, 5, 7, 9)) * (t < 3.0)
    x = x + 0.002 * rng.standard_normal(t.size)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


PITCHES = {"bass": (28, 45), "mallet": (70, 90), "organ": (48, 70)}


def make_nsynth(root: Path, per_family: dict[str, int] | None = None, families=("bass", "mallet", "organ"),
                seed: int = 0) -> Path:
    """Write a small dataset in the NSynth layout (16 kHz, 4 s WAVs) under ``root``."""
    per_family = per_family or {"train": 12, "valid": 4, "test": 4}
    rng = np.random.default_rng(seed)
    inst = 0
    for split, n in per_family.items():
        meta = {}
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        for fam in families:
            inst += 1
            for k in range(n):
                pitch = int(rng.integers(*PITCHES[fam]))
                note_str = f"{fam}_acoustic_{inst:03d}-{pitch:03d}-{100 + k % 27:03d}"
                sf.write(audio / f"{note_str}.wav", tone(fam, pitch, seed=inst * 100 + k), SR, subtype="PCM_16")
                meta[note_str] = {"note": len(meta), "note_str": note_str, "instrument": inst,
                                  "instrument_str": note_str.split("-")[0], "pitch": pitch, "velocity": 100,
                                  "sample_rate": SR, "qualities": [0] * 10, "qualities_str": [],
                                  "instrument_family": FAMILIES.index(fam), "instrument_family_str": fam,
                                  "instrument_source": 0, "instrument_source_str": "acoustic"}
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(meta))
    return root


def write_bad_wavs(d: Path) -> dict[str, Path]:
    """The bad inputs of the issue: empty, truncated, not audio, silent; and the odd-but-valid ones."""
    d.mkdir(parents=True, exist_ok=True)
    out = {"empty": d / "empty.wav", "truncated": d / "truncated.wav", "not_audio": d / "not_audio.wav",
           "silent": d / "silent.wav", "pcm8": d / "pcm8.wav", "rate96k": d / "rate96k.wav", "six_ch": d / "six_ch.wav"}
    out["empty"].write_bytes(b"")
    good = tone("organ", 60)
    sf.write(d / "full.wav", good, SR, subtype="PCM_16")
    raw = (d / "full.wav").read_bytes()
    out["truncated"].write_bytes(raw[: len(raw) // 3])
    out["not_audio"].write_text("this is a text file, not a WAV\n" * 20)
    sf.write(out["silent"], np.zeros(SR * 2, dtype=np.float32), SR, subtype="PCM_16")
    sf.write(out["pcm8"], good, SR, subtype="PCM_U8")
    t = np.arange(96000 * 2) / 96000
    sf.write(out["rate96k"], (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 96000, subtype="PCM_24")
    six = np.stack([tone("mallet", 75)] + [np.zeros(NOTE_SAMPLES, np.float32)] * 5, axis=1)  # (N, 6)
    sf.write(out["six_ch"], six, SR, subtype="PCM_16")
    return out


def read_notes(examples, clip_samples: int = SR):
    """Every note of ``examples`` through the streaming Dataset: (clips (N, clip), labels, problems)."""
    items = [N.NSynthNotes(examples, clip_samples)[i] for i in range(len(examples))]
    return np.stack([it[0] for it in items]), [it[1] for it in items], [it[3] for it in items]


# ----------------------------------------------------------------------------- the layout
def test_split_dirs_root_split_and_examples_json(tmp_path):
    root = make_nsynth(tmp_path / "ns", {"train": 1, "test": 1})
    assert set(N.split_dirs(root)) == {"train", "test"}
    assert N.split_dirs(root / "nsynth-train") == {"train": root / "nsynth-train"}
    assert N.split_dirs(root / "nsynth-test" / "examples.json") == {"test": root / "nsynth-test"}
    with pytest.raises(UserError, match="no NSynth split"):
        N.split_dirs(tmp_path)
    with pytest.raises(UserError, match="no such file"):
        N.split_dirs(tmp_path / "nope")


def test_read_examples_labels_and_family_index_kept(tmp_path):
    root = make_nsynth(tmp_path / "ns", {"train": 3})
    ex, bad = N.read_examples(root / "nsynth-train")
    assert len(ex) == 9 and bad == 0
    # NSynth's index order: bass 0, mallet 5, organ 6, even with the other families absent
    assert sorted({e.family for e in ex}) == [0, 5, 6]
    assert all(e.audio.is_file() for e in ex)


def test_examples_json_naming_missing_audio(tmp_path, caplog):
    root = make_nsynth(tmp_path / "ns", {"train": 3})
    victim = min((root / "nsynth-train" / "audio").glob("*.wav"))
    victim.unlink()
    with pytest.raises(UserError) as e:
        N.read_examples(root / "nsynth-train")
    assert victim.name in e.value.message and "examples.json" in e.value.message and "--skip-bad" in e.value.message
    kept, bad = N.read_examples(root / "nsynth-train", skip_bad=True)
    assert len(kept) == 8 and bad == 1


def test_examples_json_malformed(tmp_path):
    d = tmp_path / "nsynth-test"
    d.mkdir()
    (d / "examples.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        N.read_examples(d)
    (d / "examples.json").write_text(json.dumps({"x": {"instrument_family": 42}}))
    with pytest.raises(UserError, match="outside 0..10"):
        N.read_examples(d)


@pytest.mark.parametrize("kind, message", [("empty", "empty"), ("truncated", "truncated"),
                                           ("not_audio", "not a readable audio file"), ("silent", "silent")])
def test_bad_wavs_name_the_file(tmp_path, kind, message):
    bad = write_bad_wavs(tmp_path / "bad")
    clips, _labels, problems = read_notes([N.Example("x", 0, bad[kind])])
    assert str(bad[kind]) in problems[0] and message in problems[0] and len(problems[0].splitlines()) == 1
    assert not clips.any()


def test_odd_but_valid_wavs_are_read(tmp_path):
    bad = write_bad_wavs(tmp_path / "bad")
    ex = [N.Example("a", 6, bad["pcm8"]), N.Example("b", 6, bad["rate96k"]), N.Example("c", 5, bad["six_ch"])]
    waves, labels, problems = read_notes(ex)
    assert waves.shape == (3, SR) and labels == [6, 6, 5] and problems == ["", "", ""]
    # 8-bit: the organ tone survives 8-bit quantisation
    ref = tone("organ", 60)[:SR]
    assert np.corrcoef(waves[0], ref)[0, 1] > 0.99
    # 96 kHz: resampled to 16 kHz, still a 440 Hz sine (the spectral peak at bin 440)
    spectrum = np.abs(np.fft.rfft(waves[1]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    # six channels: mixed down (the mean), so the mallet tone at 1/6 amplitude
    ref = tone("mallet", 75)[:SR] / 6
    assert np.allclose(waves[2], ref, atol=2e-4)


def test_collate_sets_bad_notes_aside(tmp_path):
    bad = write_bad_wavs(tmp_path / "bad")
    ds = N.NSynthNotes([N.Example(k, 6, p) for k, p in sorted(bad.items())], SR)
    batch = N.Collate()([ds[i] for i in range(len(ds))])
    assert batch.waves.shape == (3, SR) and batch.labels.tolist() == [6, 6, 6] and batch.targets is None
    assert len(batch.problems) == 4 and all("bad" in p for p in batch.problems)


# ----------------------------------------------------------------------------- GM mapping and splits
def test_gm_mapping_golden():
    assert GM_FAMILY[0] == ("keyboard", "acoustic")
    assert GM_FAMILY[4] == ("keyboard", "electronic")
    assert GM_FAMILY[12][0] == "mallet"
    assert GM_FAMILY[19][0] == "organ"
    assert GM_FAMILY[24][0] == GM_FAMILY[30][0] == "guitar"
    assert GM_FAMILY[33] == ("bass", "electronic") and GM_FAMILY[38] == ("bass", "synthetic")
    assert GM_FAMILY[40][0] == GM_FAMILY[48][0] == "string"
    assert GM_FAMILY[52][0] == "vocal"
    assert GM_FAMILY[56][0] == "brass" and GM_FAMILY[65][0] == "reed" and GM_FAMILY[73][0] == "flute"
    assert GM_FAMILY[80] == ("synth_lead", "synthetic")
    for dropped in (47, 55, 88, 96, 115, 127):  # timpani, orchestra hit, pads, effects, percussion
        assert dropped not in GM_FAMILY
    assert {f for f, _ in GM_FAMILY.values()} == set(FAMILIES)


def test_split_by_soundfont_holds_out_the_last_soundfont():
    a, b = Path("a.sf2"), Path("b.sf2")
    plan = R.plan_instruments([a, b], "soundfont")
    assert {i.split for i in plan if i.soundfont == a} == {"train"}
    held = [i for i in plan if i.soundfont == b]
    assert {i.split for i in held} == {"valid", "test"}
    for fam in FAMILIES:  # both held-out splits see every family with 2+ programs
        splits = {i.split for i in held if i.family == fam}
        assert splits == {"valid", "test"} or len([i for i in held if i.family == fam]) < 2
    assert len({i.instrument_str for i in plan}) == len(plan)


def test_split_by_program_never_splits_an_instrument_across_splits():
    a, b = Path("a.sf2"), Path("b.sf2")
    plan = R.plan_instruments([a, b], "program", seed=3)
    by_program: dict[int, set] = {}
    for i in plan:
        by_program.setdefault(i.program, set()).add(i.split)
    assert all(len(s) == 1 for s in by_program.values())  # the same program: the same split in both
    held_families = {i.family for i in plan if i.split == "test"}
    assert {"keyboard", "guitar", "bass", "string", "reed", "flute", "brass", "synth_lead"} <= held_families
    with pytest.raises(UserError, match="at least two"):
        R.plan_instruments([a], "soundfont")


# ----------------------------------------------------------------------------- packing and the embedded set
def test_pack_unpack_round_trip(tmp_path):
    root = make_nsynth(tmp_path / "ns", {"train": 2, "valid": 1})
    archive = D.pack_archive(root, tmp_path / "mini.tar")
    out = tmp_path / "unpacked"
    D.unpack_archive(archive, out)
    for split in ("train", "valid"):
        a = json.loads((root / f"nsynth-{split}" / "examples.json").read_text())
        b = json.loads((out / f"nsynth-{split}" / "examples.json").read_text())
        assert a == b
        for name in a:
            x, sr_x = sf.read(root / f"nsynth-{split}" / "audio" / f"{name}.wav", dtype="float32")
            y, sr_y = sf.read(out / f"nsynth-{split}" / "audio" / f"{name}.wav", dtype="float32")
            assert sr_y == sr_x == SR and len(y) == NOTE_SAMPLES
            assert np.corrcoef(x[:SR], y[:SR])[0, 1] > 0.95  # lossy, but the same note


@pytest.mark.skipif(not D.EMBEDDED_ARCHIVE.is_file(), reason="the embedded set is not built yet")
def test_embedded_set_unpacks_to_nsynth_layout():
    root = D.embedded_root()
    dirs = N.split_dirs(root)
    assert set(dirs) == {"train", "valid", "test"}
    train, _ = N.read_examples(dirs["train"])
    test, _ = N.read_examples(dirs["test"])
    assert len({e.family for e in train}) == len(FAMILIES)
    # held-out instruments: no instrument in both train and test
    assert not {e.instrument_str for e in train} & {e.instrument_str for e in test}
    info = sf.info(train[0].audio)
    assert info.samplerate == SR and info.frames == NOTE_SAMPLES and info.channels == 1
    assert D.embedded_root() == root  # unpacked once


# ----------------------------------------------------------------------------- FluidSynth (skipped without it)
SF2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def _have_fluidsynth() -> bool:
    try:
        import fluidsynth

        return hasattr(fluidsynth, "Synth") and SF2.is_file()
    except (ImportError, OSError):
        return False


@pytest.mark.skipif(not _have_fluidsynth(), reason="needs pyfluidsynth, libfluidsynth and timgm6mb-soundfont")
def test_render_from_soundfont(tmp_path):
    # the same SoundFont twice: the second copy is "held out" (split by SoundFont)
    copy = tmp_path / "copy.sf2"
    shutil.copy(SF2, copy)
    counts = R.build_dataset([SF2, copy], tmp_path / "ns", pitch_step=24, velocities=[100],
                             families=["bass", "flute", "organ"])
    assert counts["train"] > 0 and counts["valid"] + counts["test"] > 0
    meta = json.loads((tmp_path / "ns" / "nsynth-train" / "examples.json").read_text())
    name, entry = next(iter(meta.items()))
    assert entry["sample_rate"] == SR and entry["instrument_family_str"] in {"bass", "flute", "organ"}
    assert entry["instrument_family"] == FAMILIES.index(entry["instrument_family_str"])
    assert name == f"{entry['instrument_str']}-{entry['pitch']:03d}-{entry['velocity']:03d}"
    x, sr = sf.read(tmp_path / "ns" / "nsynth-train" / "audio" / f"{name}.wav")
    assert sr == SR and x.shape == (NOTE_SAMPLES,) and 0.5 < np.abs(x).max() <= 0.91
    assert np.sqrt(np.mean(x[:SR] ** 2)) > 1e-3  # sounds in the first second
    examples, _ = N.read_examples(tmp_path / "ns" / "nsynth-train")
    waves, _labels, problems = read_notes(examples)
    assert len(examples) == counts["train"] and not any(problems) and (np.abs(waves).max(1) > 0.01).all()
