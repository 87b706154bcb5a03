"""Constants of the chords task: the signal chain, the 25-class vocabulary (no torch here)."""

from __future__ import annotations

from songkit.core import audio as _audio

TASK = "chords"

# --- the signal chain, derived from the shared front end: the Billboard/Chordino grid ---
SAMPLE_RATE = _audio.SAMPLE_RATE  # 22050 Hz
HOP_LENGTH = _audio.HOP_LENGTH  # 1024 samples
N_FFT = 8192  # 372 ms window: 2.7 Hz bins, so bass notes down to ~E1 land in their own semitone
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 21.533 /s, Chordino's 2048 at 44.1 kHz
FRAME_SECONDS = 1.0 / FRAMES_PER_SECOND  # 0.046439909 s
CHROMA_DIM = 24  # 12 bass + 12 treble bins, each starting at pitch class A (Chordino "bothchroma")

# --- the vocabulary: MIREX majmin, 25 classes ---
PITCH_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]  # semitone from C
NO_CHORD = 0
VOCAB: list[str] = ["N"] + [f"{p}:maj" for p in PITCH_NAMES] + [f"{p}:min" for p in PITCH_NAMES]
NUM_CLASSES = len(VOCAB)  # 25
IGNORE = -100  # X, dim, sus...: left out of the loss and the scores (torch's cross-entropy default)
A_OFFSET = 9  # chroma bin 0 is A = semitone 9 above C


def class_index(root: int, minor: bool) -> int:
    """Class of a major/minor chord on ``root`` (semitone above C)."""
    return 1 + 12 * int(minor) + root % 12


def class_root(index: int) -> int:
    """Root semitone (from C) of a class, -1 for N."""
    return -1 if index == NO_CHORD else (index - 1) % 12


def transpose_class(index, shift: int):
    """Move class ids (int or numpy/torch array) up ``shift`` semitones; N and IGNORE stay."""
    if isinstance(index, int):
        if index <= 0:
            return index
        return 1 + 12 * ((index - 1) // 12) + (index - 1 + shift) % 12
    out = index.clone() if hasattr(index, "clone") else index.copy()
    chord = index > 0
    out[chord] = 1 + 12 * ((index[chord] - 1) // 12) + (index[chord] - 1 + shift) % 12
    return out
