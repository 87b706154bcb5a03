"""Rendering NSynth-format notes from General MIDI SoundFonts with FluidSynth (``songkit data instrument``).

Every GM program that maps to an NSynth family (constants.GM_FAMILY) becomes one NSynth instrument per
SoundFont; its notes are 4 s (3 s held, 1 s release), 16 kHz mono, dry (reverb and chorus off), in
NSynth's release layout (see nsynth.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from songkit.core.errors import UserError
from songkit.core.progress import log, track
from songkit.tasks.instrument.constants import (
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
