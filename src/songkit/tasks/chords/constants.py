"""Constants of the chords task: the signal chain, the 25-class vocabulary, train options (no torch, no numpy)."""

from __future__ import annotations

from dataclasses import dataclass

from songkit.core import music

TASK = "chords"

# --- the signal chain (defaults of the model config, which the checkpoint saves): the Billboard/Chordino grid ---
# 11,025 Hz: the semitone filterbank stops at B7 (3.95 kHz), so nothing it uses is lost, and resampling and
# the STFT cost half of what they did at 22,050 Hz / 8192 / 1024 (normalised chroma within 3e-5 of it).
SAMPLE_RATE = 11025  # Hz
HOP_LENGTH = 512  # samples: 46.4 ms, Chordino's 2048 at 44.1 kHz
N_FFT = 4096  # 372 ms window: 2.7 Hz bins, so bass notes down to ~E1 land in their own semitone
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 21.533 /s
FRAME_SECONDS = 1.0 / FRAMES_PER_SECOND  # 0.046439909 s
CHROMA_DIM = 24  # 12 bass + 12 treble bins, each starting at pitch class A (Chordino "bothchroma")
A_OFFSET = 9  # chroma bin 0 is A = semitone 9 above C
# Anti-alias filter of the resampler to SAMPLE_RATE. The semitone filterbank stops at 3.95 kHz, so the filter
# only has to keep 0-3.95 kHz flat and stop what would fold onto it (above 11,025 - 3,950 = 7,075 Hz): 6 zero
# crossings at the Nyquist cut-off (52 taps from 44.1 kHz: passband within 0.6%, -44 dB where it matters)
# instead of the general resampler's 16 (140 taps), 2.5x cheaper; chroma within 1e-3 (tests/test_chords_audio.py).
RESAMPLE_ZERO_CROSSINGS = 6
RESAMPLE_ROLLOFF = 1.0
FEATURES_VERSION = 2  # bump when the chain changes (feature cache key)
MAX_SECONDS = 3600.0  # longest input `songkit chords` reads (a header claiming more is refused)

# --- the vocabulary: MIREX majmin, 25 classes ---
PITCH_NAMES = list(music.PITCH_CLASSES)  # semitone from C
NO_CHORD = music.NO_CHORD
VOCAB: list[str] = list(music.MAJMIN_VOCAB)
NUM_CLASSES = len(VOCAB)  # 25
IGNORE = -100  # X, dim, sus...: left out of the loss and the scores (torch's cross-entropy default)

# --- models and decoding ---
MODEL_NAMES = ("frame", "blstm", "crnn1", "crnn2", "cnn_blstm", "attention")
DEFAULT_MODEL = "cnn_blstm"  # the shipped checkpoint's model
SELF_PROB = 0.9  # HMM self-transition probability at ~21.5 frames/s (chords last ~10-40 frames)
WINDOW_FRAMES = 1024  # inference: frames per window when a song is cut into a batch (~48 s)
WINDOW_OVERLAP = 128  # frames of context on each side of a window's kept middle (~6 s)
SPLITS = ("train", "valid", "test")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def class_index(root: int, minor: bool) -> int:
    """Class of a major/minor chord on ``root`` (semitone above C)."""
    return 1 + 12 * int(minor) + root % 12


def class_root(index: int) -> int:
    """Root semitone (from C) of a class, -1 for N."""
    return -1 if index == NO_CHORD else (index - 1) % 12


def class_quality(index):
    """Quality of class ids (int or numpy array): 0 N, 1 major, 2 minor."""
    import numpy as np

    return np.where(np.asarray(index) == NO_CHORD, 0, 1 + (np.asarray(index) - 1) // 12)


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


@dataclass
class TrainOptions:
    """`songkit train chords`'s own options (field names = CLI option names with - -> _)."""

    model: str = DEFAULT_MODEL
    seq_len: int = 128  # frames per training window (the seed: 1 or 128)
    hidden_size: int = 0  # LSTM units (0: the model's default)
    augment: bool = True  # random transposition of every window across the 12 keys
    learn_transitions: bool = False  # HMM transitions counted from the training labels (key-invariant)
    crf: bool = False  # a CRF layer trained with the network (its transitions decode; crf.py)
    crf_frame_loss: float = 0.0  # with crf: + this x the frame cross-entropy (the emissions learn as without a CRF)
    label_smoothing: float = 0.0  # cross-entropy against (1 - e) one-hot + e uniform over the 25 classes
    class_balance: float = 0.0  # loss weight of a chord quality (N, maj, min) ~ its frame share ** -a (0: off)
    limit: int = 0  # use only the first N songs of each --data folder (0: all)
    folds: int = 0  # cross-validation: number of song-level folds (0: the fixed hash split)
    fold: int = 0  # which fold is held out (with --folds)
    every_song: bool = False  # train on the test split too (a model to ship; validation stays on the valid split)
