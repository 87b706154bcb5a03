"""NSynth's release layout: finding splits, reading and checking ``examples.json``, and a torch Dataset
that decodes notes on demand (in DataLoader workers), so memory stays bounded whatever the split size::

    ROOT/nsynth-train/examples.json      {note_str: {note, note_str, instrument, instrument_str,
    ROOT/nsynth-train/audio/<note_str>.wav   pitch, velocity, sample_rate, qualities, qualities_str,
    ROOT/nsynth-valid/...                    instrument_family, instrument_family_str,
    ROOT/nsynth-test/...                     instrument_source, instrument_source_str}}

Audio is 16 kHz mono, 4 s (3 s held, 1 s release). ``--data`` may name ROOT, one split folder, or a
split's ``examples.json``. The real NSynth unpacks and loads unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.tasks.instrument.constants import (
    FAMILIES,
    MIDI_PITCHES,
    MIDI_VELOCITIES,
    SILENCE_RMS,
    SPLITS,
)

SKIP_HINT = " (use --skip-bad to leave such notes out)"


@dataclass
class Example:
    """One note of a split: its name, family index, and where its audio is."""

    note_str: str
    family: int
    audio: Path
    instrument_str: str = ""
    pitch: int = -1
    soundfont: str = ""  # set by `songkit data instrument` (not an NSynth field)


# ----------------------------------------------------------------------------- finding splits
def split_dirs(path: str | os.PathLike) -> dict[str, Path]:
    """The split folders under ``path``: ``{"train": .../nsynth-train, ...}``.

    ``path`` is a folder holding ``nsynth-<split>/`` folders, one split folder (its name gives the
    split, else "test"), or a split's ``examples.json``.
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


# ----------------------------------------------------------------------------- examples.json
def _int_field(entry: dict, name: str, lo: int, hi: int, required: bool) -> str | None:
    """The problem with ``entry[name]`` (an int in lo..hi), or None."""
    if name not in entry:
        return f"has no {name}" if required else None
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"has {name} {_short(value)}, expected an integer"
    if not lo <= value <= hi:
        return f"has {name} {_short(value)} outside {lo}..{hi}"
    return None


def _short(value) -> str:
    """A value for a one-line message: containers by kind (they may nest deeply), scalars cut at 40."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _str_field(entry: dict, name: str) -> str | None:
    if name in entry and not isinstance(entry[name], str):
        return f"has {name} {_short(entry[name])}, expected a string"
    return None


def check_entry(key: str, entry) -> str | None:
    """What is wrong with one ``examples.json`` entry, or None. Checks every field songkit reads."""
    if not isinstance(entry, dict):
        return f"is {_short(entry)}, expected an object"
    problem = (_int_field(entry, "instrument_family", 0, len(FAMILIES) - 1, True)
               or _int_field(entry, "pitch", *MIDI_PITCHES, False)
               or _int_field(entry, "velocity", *MIDI_VELOCITIES, False)
               or _str_field(entry, "note_str") or _str_field(entry, "instrument_str")
               or _str_field(entry, "soundfont"))
    if problem:
        return problem
    note_str = entry.get("note_str", key)
    if (not note_str or len(note_str) > 200 or note_str.startswith(".")
            or any(c in "/\\" or ord(c) < 32 for c in note_str)):
        return f"has note_str {_short(note_str)}, not a file name"
    return None


def read_examples(split_dir: str | os.PathLike, skip_bad: bool = False) -> tuple[list[Example], int]:
    """The examples of one split, checked: every field songkit reads, and a WAV on disk for each.

    Returns ``(examples sorted by name, number left out)``. A bad entry is a UserError naming the file
    and the entry, unless ``skip_bad``: then it is left out and counted (a log line names the first).
    """
    d = Path(split_dir)
    meta = d / "examples.json"
    try:
        raw = json.loads(meta.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{meta}: no such file") from None
    except RecursionError:
        raise UserError(f"{meta}: nested too deeply to be an NSynth examples.json") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, huge integers
        raise UserError(f"{meta}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{meta}: expected a JSON object keyed by note name")
    out: list[Example] = []
    bad: list[str] = []
    audio_dir = d / "audio"
    for key in sorted(raw):
        entry = raw[key]
        problem = check_entry(key, entry)
        if problem is None:
            note_str = entry.get("note_str", key)
            wav = audio_dir / f"{note_str}.wav"
            if not wav.is_file():
                problem = f"names {note_str!r} but {wav} does not exist"
        if problem:
            message = f"{meta}: entry {_short(key)} {problem}"
            if not skip_bad:
                raise UserError(message + SKIP_HINT)
            bad.append(message)
            continue
        out.append(Example(note_str, entry["instrument_family"], wav, entry.get("instrument_str", ""),
                           entry.get("pitch", -1), entry.get("soundfont", "")))
    if bad:
        log(f"{meta}: skipped {len(bad)} bad entr{'y' if len(bad) == 1 else 'ies'} (first: {bad[0]})")
    return out, len(bad)


def subsample(examples: list[Example], limit: int, seed: int, what: str = "notes") -> list[Example]:
    """A seeded random ``limit`` of ``examples`` (in their order), or all of them when ``limit`` is 0."""
    import numpy as np

    if not limit or limit >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), limit, replace=False))
    log(f"using {limit} of {len(examples)} {what}")
    return [examples[i] for i in keep]


# ----------------------------------------------------------------------------- audio
def is_silent(samples) -> bool:
    """True when ``samples`` are below SILENCE_RMS (about -80 dBFS), or empty."""
    import numpy as np

    return samples.size == 0 or float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS


def check_signal(samples, path) -> None:
    """A silent clip is a UserError naming the file (the models would output noise for it)."""
    if is_silent(samples):
        raise UserError(f"{path}: silent audio (RMS below {SILENCE_RMS:g}); nothing to classify")


class NSynthNotes:
    """A torch ``Dataset`` over a split's notes that reads each note when asked (in the DataLoader
    workers): nothing but the list of examples stays in memory.

    ``dataset[i]`` is ``(clip (clip_samples,) float32, family, i, problem)``; ``problem`` is "" or the
    one-line reason the note could not be used (unreadable, truncated, silent). The collate function
    leaves such notes out; the caller raises or counts them (``--skip-bad``), in the main process, so a
    worker never raises. With ``augment``, each note's augmentation draws from
    ``item_rng(seed, epoch, i)``: the same whichever worker decodes it.
    """

    def __init__(self, examples: list[Example], clip_samples: int, augment=None, seed: int = 0):
        self.examples, self.clip_samples, self.augment, self.seed = examples, clip_samples, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.examples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int):
        import numpy as np

        from songkit.core.audio import read_audio
        from songkit.tasks.instrument.constants import SAMPLE_RATE

        ex = self.examples[i]
        n = self.clip_samples
        try:
            samples, _ = read_audio(ex.audio, SAMPLE_RATE)
            check_signal(samples[:n], ex.audio)
        except UserError as e:
            return np.zeros(n, np.float32), ex.family, i, e.message
        if self.augment is not None and self.augment.enabled:
            from songkit.core.data import item_rng
            from songkit.tasks.instrument.augment import augment_note

            clip = augment_note(samples, n, self.augment, item_rng(self.seed, self.epoch, i))
        else:
            clip = np.zeros(n, np.float32)
            clip[: min(n, len(samples))] = samples[:n]
        return clip, ex.family, i, ""


@dataclass
class Batch:
    """What the collate function makes of a list of notes: the good ones stacked, the bad ones named."""

    waves: object  # (B, N) float32 tensor
    labels: object  # (B,) int64 tensor
    targets: object  # (B, 11) float32 soft targets (mixup), or None
    problems: list  # one-line reasons of the notes left out


class Collate:
    """Stack good notes, set aside bad ones, and mix the batch (mixup) with an RNG seeded by
    (seed, epoch, first index), so it runs the same in any worker. A class, so workers can pickle it."""

    def __init__(self, mixup_alpha: float = 0.0, seed: int = 0, epoch: int = 0):
        self.mixup_alpha, self.seed, self.epoch = mixup_alpha, seed, epoch

    def __call__(self, items: list) -> Batch:
        import numpy as np
        import torch

        good = [it for it in items if not it[3]]
        problems = [it[3] for it in items if it[3]]
        n = len(items[0][0])
        waves = np.stack([it[0] for it in good]) if good else np.zeros((0, n), np.float32)  # (B, N)
        labels = np.array([it[1] for it in good], dtype=np.int64)
        targets = None
        if self.mixup_alpha > 0 and len(good) > 1:
            from songkit.core.data import item_rng
            from songkit.tasks.instrument.augment import mixup

            rng = item_rng(self.seed + 7919, self.epoch, int(good[0][2]))  # apart from the notes' own draws
            waves, targets = mixup(waves, np.eye(len(FAMILIES), dtype=np.float32)[labels], self.mixup_alpha, rng)
            targets = torch.from_numpy(targets)
        return Batch(torch.from_numpy(waves), torch.from_numpy(labels), targets, problems)
