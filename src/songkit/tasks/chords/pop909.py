"""POP909 rendered to audio: pop songs with real chord progressions for the audio path (issue 12).

POP909 (Wang et al., 2020) has per song ``NNN/NNN.mid`` (melody, bridge and piano tracks) with
``chord_midi.txt`` (start, end, Harte label, in seconds of MIDI time) and ``beat_midi.txt`` beside it.
Each song is rendered with one of the given SoundFonts (in turn) by the FluidSynth program
(``apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont``), after its tracks are moved to
General MIDI programs picked per song from a fixed list (pianos, electric pianos, organ, guitar,
strings) for variety. Output, in the Isophonics layout ``train chords --data`` reads: ``NNN.flac``,
``NNN.lab`` (the chord file, labels checked) and ``NNN.beats`` (beat times, for ``--beats``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

from songkit.core.errors import UserError

SAMPLE_RATE = 22050  # rendering rate (features resample to the model's own)
# (melody, bridge, piano) General MIDI programs: a few instrument sets a pop arrangement uses
PROGRAM_SETS = [(0, 0, 0), (4, 0, 0), (0, 48, 1), (73, 26, 4), (65, 5, 2), (40, 24, 0), (0, 49, 16), (11, 27, 5)]


def song_dirs(root: Path) -> list[Path]:
    """``NNN/`` folders holding ``NNN.mid`` and ``chord_midi.txt`` (``root`` or ``root/POP909``)."""
    root = Path(root)
    if (root / "POP909").is_dir():
        root = root / "POP909"
    dirs = sorted(d for d in root.iterdir() if (d / f"{d.name}.mid").is_file() and (d / "chord_midi.txt").is_file()) \
        if root.is_dir() else []
    if not dirs:
        raise UserError(f"{root}: no POP909 songs (NNN/NNN.mid with chord_midi.txt beside it)")
    return dirs


def chord_lab(song: Path) -> str:
    """``chord_midi.txt`` as ``.lab`` text, every line checked (one line naming the file and line on error)."""
    from songkit.tasks.chords.labels import format_lab, read_lab

    path = song / "chord_midi.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{path}: not a readable chord file ({type(e).__name__})") from None
    ann = read_lab(path, text=text)
    return format_lab(ann.intervals, ann.labels)


def render_song(midi: Path, soundfont: Path, programs: tuple, out_wav: Path) -> None:
    """Render one MIDI file with FluidSynth after setting its tracks' programs."""
    import symusic

    score = symusic.Score(str(midi))
    for i, track in enumerate(score.tracks):
        if not track.is_drum:
            track.program = programs[min(i, len(programs) - 1)]
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "song.mid"
        score.dump_midi(str(mid))
        r = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-T", "wav",
                            "-F", str(out_wav), str(soundfont), str(mid)], capture_output=True, text=True, check=False)
    if r.returncode != 0 or not out_wav.is_file():
        raise UserError(f"{midi}: FluidSynth failed with {soundfont} ({(r.stderr or r.stdout).strip()[:120]})")


def render_dataset(pop909: Path, soundfonts: list[Path], out: Path, limit: int = 0, fmt: str = "flac",
                   splits=("train", "valid", "test")) -> Path:
    """Render POP909 songs of ``splits`` (song-level hash split) into ``out``; returns ``out``."""
    import soundfile as sf

    from songkit.core.io import atomic_write_text
    from songkit.core.progress import track
    from songkit.tasks.chords.data import read_beats, split_of

    if shutil.which("fluidsynth") is None:
        raise UserError("fluidsynth: not found (apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont)")
    for sf2 in soundfonts:
        if not Path(sf2).is_file():
            raise UserError(f"{sf2}: no such SoundFont")
    songs = [d for d in song_dirs(pop909) if split_of(d.name) in splits]
    songs = songs[:limit] if limit else songs
    if not songs:
        raise UserError(f"{pop909}: no POP909 songs in the {' / '.join(splits)} split")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i, song in enumerate(track(songs, total=len(songs), description="rendering POP909")):
        lab = chord_lab(song)  # checked before any rendering
        programs = PROGRAM_SETS[zlib.crc32(song.name.encode()) % len(PROGRAM_SETS)]
        wav = out / f".{song.name}.render.wav"
        render_song(song / f"{song.name}.mid", soundfonts[i % len(soundfonts)], programs, wav)
        audio, sr = sf.read(str(wav), dtype="float32")
        wav.unlink()
        if audio.ndim == 2:
            audio = audio.mean(1)
        peak = float(abs(audio).max()) if len(audio) else 0.0
        sf.write(str(out / f"{song.name}.{fmt}"), audio / max(peak * 1.1, 1e-6), sr)
        atomic_write_text(out / f"{song.name}.lab", lab)
        if (song / "beat_midi.txt").is_file():
            beats = read_beats(song / "beat_midi.txt")
            atomic_write_text(out / f"{song.name}.beats", "".join(f"{t:.6f}\n" for t in beats))
    return out

