"""NSynth-format data: the reader, the SoundFont renderer that builds it, the embedded default.

The layout is NSynth's release layout, so the real NSynth unpacks and loads unchanged::

    ROOT/nsynth-train/examples.json      {note_str: {note, note_str, instrument, instrument_str,
    ROOT/nsynth-train/audio/<note_str>.wav   pitch, velocity, sample_rate, qualities, qualities_str,
    ROOT/nsynth-valid/...                    instrument_family, instrument_family_str,
    ROOT/nsynth-test/...                     instrument_source, instrument_source_str}}

Audio is 16 kHz mono, 4 s (3 s held, 1 s release). ``--data`` may name ROOT, one split
folder, or a split's ``examples.json``.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.core.progress import log, track
from songkit.tasks.instrument.spec import (
    FAMILIES,
    FAMILY_PITCH_RANGE,
    GM_FAMILY,
    GM_NAMES,
    HOLD_SECONDS,
    NOTE_SAMPLES,
    QUALITIES,
    SAMPLE_RATE,
    SILENCE_RMS,
    SOURCES,
    SPLITS,
)

EMBEDDED_ARCHIVE = Path(__file__).resolve().parent / "assets" / "nsynth-mini.tar"
EMBEDDED_NAME = "nsynth-mini-v1"
REQUIRED_FIELDS = ("instrument_family",)


@dataclass
class Example:
    """One note of a split: its name, family index, and where its audio is."""

    note_str: str
    family: int
    audio: Path
    instrument_str: str = ""
    pitch: int = -1


# ----------------------------------------------------------------------------- finding splits
def split_dirs(path: str | os.PathLike) -> dict[str, Path]:
    """The split folders under ``path``: ``{"train": .../nsynth-train, ...}``.

    ``path`` is a folder holding ``nsynth-<split>/`` folders, one split folder (its name
    gives the split, else "test"), or a split's ``examples.json``.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    if p.is_file():
        if p.name != "examples.json":
            raise UserError(f"{p}: expected an NSynth folder or an examples.json")
        p = p.parent
    if (p / "examples.json").is_file():
        name = p.name.removeprefix("nsynth-")
        return {name if name in SPLITS else "test": p}
    found = {s: p / f"nsynth-{s}" for s in SPLITS if (p / f"nsynth-{s}" / "examples.json").is_file()}
    if not found:
        raise UserError(f"{p}: no NSynth split here (expected nsynth-train/examples.json, "
                        "nsynth-valid/, nsynth-test/ or an examples.json)")
    return found


def read_examples(split_dir: str | os.PathLike, skip_bad: bool = False) -> list[Example]:
    """The examples of one split, checked: every entry has a family in 0..10 and a WAV on disk.

    A missing WAV or a malformed entry is a UserError naming it, unless ``skip_bad``: then it
    is left out and counted in a log line (never silently).
    """
    d = Path(split_dir)
    meta = d / "examples.json"
    try:
        raw = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{meta}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{meta}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{meta}: expected a JSON object keyed by note name")
    out: list[Example] = []
    bad: list[str] = []
    for key in sorted(raw):
        entry = raw[key]
        problem = None
        if not isinstance(entry, dict) or not isinstance(entry.get("instrument_family"), int):
            problem = f"{meta}: entry {key!r} has no integer instrument_family"
        elif not 0 <= entry["instrument_family"] < len(FAMILIES):
            problem = f"{meta}: entry {key!r} has instrument_family {entry['instrument_family']} outside 0..10"
        else:
            note_str = entry.get("note_str", key)
            wav = d / "audio" / f"{note_str}.wav"
            if not wav.is_file():
                problem = f"{meta}: names {note_str!r} but {wav} does not exist"
        if problem:
            if not skip_bad:
                raise UserError(problem + " (use --skip-bad to leave such notes out)")
            bad.append(problem)
            continue
        out.append(Example(note_str, entry["instrument_family"], wav, entry.get("instrument_str", ""),
                           int(entry.get("pitch", -1))))
    if bad:
        log(f"{meta}: skipped {len(bad)} bad entr{'y' if len(bad) == 1 else 'ies'} (first: {bad[0]})")
    return out


def check_signal(samples, path) -> None:
    """A silent clip is a UserError naming the file (the models would output noise for it)."""
    import numpy as np

    if samples.size == 0 or float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS:
        raise UserError(f"{path}: silent audio (RMS below {SILENCE_RMS:g}); nothing to classify")


def load_clips(examples: list[Example], clip_samples: int, skip_bad: bool = False, description: str = "load"):
    """Read the first ``clip_samples`` of every example at 16 kHz mono.

    Returns ``(waves (N, clip_samples) float32, labels (N,) int64, kept examples)``. A file
    that is unreadable, truncated or silent is a UserError, or with ``skip_bad`` is left out
    and counted.
    """
    import numpy as np

    from songkit.core.audio import read_audio

    waves = np.zeros((len(examples), clip_samples), dtype=np.float32)
    kept: list[Example] = []
    bad: list[str] = []
    for ex in track(examples, total=len(examples), description=description, unit="notes"):
        try:
            samples, _ = read_audio(ex.audio, SAMPLE_RATE)
            check_signal(samples[:clip_samples], ex.audio)
        except UserError as e:
            if not skip_bad:
                raise UserError(f"{e.message} (use --skip-bad to leave such notes out)") from None
            bad.append(e.message)
            continue
        n = min(clip_samples, samples.shape[0])
        waves[len(kept), :n] = samples[:n]
        kept.append(ex)
    if bad:
        log(f"skipped {len(bad)} unreadable or silent note{'s' if len(bad) != 1 else ''} (first: {bad[0]})")
    labels = np.array([e.family for e in kept], dtype=np.int64)
    return waves[: len(kept)], labels, kept


# ----------------------------------------------------------------------------- the embedded default
def embedded_root() -> Path:
    """The embedded dataset, unpacked on first use into ``$SONGKIT_HOME`` (or ``~/.cache/songkit``)
    as 16-bit WAVs in the exact NSynth layout. Returns the folder holding ``nsynth-*``."""
    from songkit.core.io import cache_dir

    root = cache_dir("instrument") / EMBEDDED_NAME
    if (root / "nsynth-train" / "examples.json").is_file():
        return root
    if not EMBEDDED_ARCHIVE.is_file():
        raise UserError(f"{EMBEDDED_ARCHIVE}: the embedded dataset is missing from this install; pass --data")
    log(f"unpacking the embedded NSynth-format set into {root}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}.", dir=root.parent))
    try:
        unpack_archive(EMBEDDED_ARCHIVE, tmp)
        os.replace(tmp, root)
    except OSError:
        if not (root / "nsynth-train" / "examples.json").is_file():  # another process may have won the race
            raise
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return root


def pack_archive(root: str | os.PathLike, archive: str | os.PathLike, quality: float = 0.0) -> Path:
    """Pack an NSynth-layout folder as a tar of examples.json files and Ogg Vorbis notes
    (lossy, about 10x smaller than WAV) for shipping inside the package."""
    import io

    import soundfile as sf

    root, archive = Path(root), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w") as tar:
        for split, d in sorted(split_dirs(root).items()):
            tar.add(d / "examples.json", arcname=f"nsynth-{split}/examples.json")
            for wav in sorted((d / "audio").glob("*.wav")):
                data, sr = sf.read(wav, dtype="float32")
                buf = io.BytesIO()
                sf.write(buf, data, sr, format="OGG", subtype="VORBIS", compression_level=1 - quality)
                info = tarfile.TarInfo(f"nsynth-{split}/audio/{wav.stem}.ogg")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
    return archive


def unpack_archive(archive: Path, out: Path) -> None:
    """Unpack :func:`pack_archive`'s tar into NSynth's layout (Ogg -> 16-bit WAV, 4 s)."""
    import io

    import numpy as np
    import soundfile as sf

    with tarfile.open(archive, "r") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or ".." in name.parts or name.is_absolute():
                continue
            data = tar.extractfile(member).read()
            if name.suffix == ".ogg":
                samples, sr = sf.read(io.BytesIO(data), dtype="float32")
                samples = np.clip(np.pad(samples, (0, max(0, NOTE_SAMPLES - len(samples))))[:NOTE_SAMPLES], -1, 1)
                target = out / name.with_suffix(".wav")
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, samples, sr, subtype="PCM_16")
            else:
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


def resolve_data(paths: list[Path] | None) -> dict[str, list[Path]]:
    """``--data`` paths (or the embedded default) -> split name -> split folders."""
    roots = list(paths) if paths else [embedded_root()]
    out: dict[str, list[Path]] = {}
    for p in roots:
        for split, d in split_dirs(p).items():
            out.setdefault(split, []).append(d)
    return out


# ----------------------------------------------------------------------------- building from SoundFonts
@dataclass
class Instrument:
    """One (SoundFont, GM program) pair: an NSynth instrument."""

    soundfont: Path
    program: int
    family: str
    source: str
    index: int = 0
    split: str = "train"

    @property
    def instrument_str(self) -> str:
        return f"{self.family}_{self.source}_{self.index:03d}"


def plan_instruments(soundfonts: list[Path], split_by: str = "soundfont", families: list[str] | None = None,
                     seed: int = 0) -> list[Instrument]:
    """Every GM program that maps to an NSynth family, in every SoundFont, assigned to a split.

    ``split_by="soundfont"``: the last SoundFont is held out (its instruments alternate between
    valid and test within each family); all others train. ``split_by="program"``: within each
    family, programs are shuffled (seeded) and about 70/15/15 % go to train/valid/test, the same
    program in every SoundFont going to the same split. Never split by note: held-out
    instruments are unseen in training, as in NSynth.
    """
    import random

    if split_by not in ("soundfont", "program"):
        raise UserError(f"--split-by {split_by}: expected soundfont or program")
    if split_by == "soundfont" and len(soundfonts) < 2:
        raise UserError("--split-by soundfont needs at least two --soundfont files (the last one is held out)")
    wanted = set(families or FAMILIES)
    unknown = wanted - set(FAMILIES)
    if unknown:
        raise UserError(f"--family {', '.join(sorted(unknown))}: not an NSynth family ({', '.join(FAMILIES)})")
    programs = sorted(p for p, (fam, _) in GM_FAMILY.items() if fam in wanted)
    program_split: dict[int, str] = {}
    rng = random.Random(seed)
    for fam in FAMILIES:
        progs = [p for p in programs if GM_FAMILY[p][0] == fam]
        rng.shuffle(progs)
        n_hold = max(1, round(0.15 * len(progs))) if len(progs) >= 3 else 0
        for i, p in enumerate(progs):
            program_split[p] = "valid" if i < n_hold else "test" if i < 2 * n_hold else "train"
    out: list[Instrument] = []
    counter = 0
    for k, sf2 in enumerate(soundfonts):
        held_out = split_by == "soundfont" and k == len(soundfonts) - 1
        per_family: dict[str, int] = {}
        for p in programs:
            fam, src = GM_FAMILY[p]
            if split_by == "program":
                split = program_split[p]
            elif held_out:
                split = ("valid", "test")[per_family.get(fam, 0) % 2]
            else:
                split = "train"
            per_family[fam] = per_family.get(fam, 0) + 1
            out.append(Instrument(sf2, p, fam, src, counter, split))
            counter += 1
    return out


def note_pitches(family: str, pitch_step: int) -> list[int]:
    """MIDI pitches rendered for a family: its range at ``pitch_step`` semitones."""
    lo, hi = FAMILY_PITCH_RANGE[family]
    return list(range(lo, hi + 1, pitch_step))


class SoundFontRenderer:
    """Single notes from SoundFonts through FluidSynth (the pyfluidsynth binding over Debian's
    libfluidsynth): 3 s held, 1 s release, 16 kHz mono, reverb and chorus off (NSynth notes are dry)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        try:
            import fluidsynth  # pyfluidsynth: a ctypes binding, so libfluidsynth must be installed too
        except (ImportError, OSError) as e:
            raise UserError(
                f"FluidSynth is not available ({e}); install it with "
                "`apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont` and `pip install pyfluidsynth`"
            ) from None
        if not hasattr(fluidsynth, "Synth"):
            raise UserError(f"{getattr(fluidsynth, '__file__', 'fluidsynth')}: not pyfluidsynth "
                            "(another package named fluidsynth is installed); `pip install pyfluidsynth`")
        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate),
                                      **{"synth.reverb.active": 0, "synth.chorus.active": 0})
        self.loaded: dict[Path, int] = {}

    def load(self, sf2: Path) -> int:
        if sf2 not in self.loaded:
            if not Path(sf2).is_file():
                raise UserError(f"{sf2}: no such SoundFont file")
            sfid = self.synth.sfload(str(sf2))
            if sfid < 0:
                raise UserError(f"{sf2}: FluidSynth could not load this SoundFont")
            self.loaded[sf2] = sfid
        return self.loaded[sf2]

    def has_program(self, sf2: Path, program: int) -> bool:
        return self.synth.program_select(0, self.load(sf2), 0, program) == 0

    def render(self, sf2: Path, program: int, pitch: int, velocity: int):
        """One note -> float32 ``(NOTE_SAMPLES,)`` mono, unnormalised."""
        import numpy as np

        sfid = self.load(sf2)
        self.synth.system_reset()  # no tail of the previous note
        self.synth.program_select(0, sfid, 0, program)
        hold = int(HOLD_SECONDS * self.sample_rate)
        self.synth.noteon(0, pitch, velocity)
        a = self.synth.get_samples(hold)
        self.synth.noteoff(0, pitch)
        b = self.synth.get_samples(NOTE_SAMPLES - hold)
        stereo = np.concatenate([a, b]).reshape(-1, 2).astype(np.float32) / 32768.0  # interleaved int16
        return stereo.mean(axis=1)

    def close(self) -> None:
        self.synth.delete()


def build_dataset(soundfonts: list[Path], out: Path, *, split_by: str = "soundfont", pitch_step: int = 4,
                  velocities: list[int] = (75, 127), families: list[str] | None = None,
                  max_notes_per_instrument: int = 0, max_held_out_notes: int = 0,
                  seed: int = 0) -> dict[str, int]:
    """Render NSynth-format splits from General MIDI SoundFonts into ``out``.

    Each instrument's notes are scaled together so its loudest note peaks at 0.9 (the
    velocity dynamics within an instrument stay; the SoundFonts' different output levels
    do not become a cue). A note that renders silent (no sample zone for that pitch) is
    left out and counted. Returns the number of notes written per split.
    """
    import random

    import numpy as np
    import soundfile as sf

    from songkit.core.io import atomic_write_text

    if not soundfonts:
        raise UserError("give at least one --soundfont file")
    for v in velocities:
        if not 1 <= v <= 127:
            raise UserError(f"--velocity {v}: expected 1..127")
    if pitch_step < 1:
        raise UserError(f"--pitch-step {pitch_step}: expected >= 1")
    soundfonts = [Path(s) for s in soundfonts]
    for s in soundfonts:
        if not s.is_file():
            raise UserError(f"{s}: no such SoundFont file")
    renderer = SoundFontRenderer()
    instruments = plan_instruments(soundfonts, split_by, families, seed)
    rng = random.Random(seed)
    meta: dict[str, dict] = {s: {} for s in SPLITS}
    silent = missing = 0
    note_id = 0
    try:
        for inst in track(instruments, total=len(instruments), description="render", unit="instruments"):
            if not renderer.has_program(inst.soundfont, inst.program):
                missing += 1
                continue
            grid = [(p, v) for p in note_pitches(inst.family, pitch_step) for v in velocities]
            cap = max_held_out_notes if inst.split != "train" and max_held_out_notes else max_notes_per_instrument
            if cap and len(grid) > cap:
                grid = sorted(rng.sample(grid, cap))
            notes = [(p, v, renderer.render(inst.soundfont, inst.program, p, v)) for p, v in grid]
            notes = [(p, v, x) for p, v, x in notes if np.sqrt(np.mean(x[: SAMPLE_RATE] ** 2)) >= 10 * SILENCE_RMS]
            silent += len(grid) - len(notes)
            if not notes:
                continue
            scale = 0.9 / max(float(np.abs(x).max()) for _, _, x in notes)
            audio_dir = out / f"nsynth-{inst.split}" / "audio"
            audio_dir.mkdir(parents=True, exist_ok=True)
            for pitch, velocity, x in notes:
                note_str = f"{inst.instrument_str}-{pitch:03d}-{velocity:03d}"
                sf.write(audio_dir / f"{note_str}.wav", (x * scale).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
                meta[inst.split][note_str] = {
                    "note": note_id, "note_str": note_str, "instrument": inst.index,
                    "instrument_str": inst.instrument_str, "pitch": pitch, "velocity": velocity,
                    "sample_rate": SAMPLE_RATE, "qualities": [0] * len(QUALITIES), "qualities_str": [],
                    "instrument_family": FAMILIES.index(inst.family), "instrument_family_str": inst.family,
                    "instrument_source": SOURCES.index(inst.source), "instrument_source_str": inst.source,
                    # not NSynth fields: where the note came from (NSynth readers ignore extra keys)
                    "soundfont": inst.soundfont.name, "gm_program": inst.program,
                    "gm_name": GM_NAMES[inst.program],
                }
                note_id += 1
    finally:
        renderer.close()
    counts = {}
    for split in SPLITS:
        if meta[split]:
            atomic_write_text(out / f"nsynth-{split}" / "examples.json", json.dumps(meta[split], indent=1) + "\n")
        counts[split] = len(meta[split])
    if silent or missing:
        log(f"left out {silent} silent note(s) and {missing} program(s) the SoundFonts lack")
    return counts
