"""Constants of the generate task: names, defaults, the vocabulary's specials, train options (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

TASK = "generate"
ABC_SUFFIXES = (".abc",)
MIDI_SUFFIXES = (".mid", ".midi")
MODEL_NAMES = ("lstm",)
DEFAULT_MODEL = "lstm"  # the shipped checkpoint's model

# Special characters of the vocabulary (never in ABC text): unknown, begin and end of a tune.
UNK, BOS, EOS = "\x00", "\x02", "\x03"
SPECIALS = (UNK, BOS, EOS)

# Vocabularies: "ascii" = the specials, newline and every printable ASCII character (97 + 3), so no
# ASCII tune of any collection maps to UNK; "corpus" = the characters seen in the training tunes.
VOCABS = ("ascii", "corpus")
ASCII_CHARS = "\n" + "".join(chr(c) for c in range(32, 127))

# Header fields kept for training: the musical ones (folk-rnn keeps M, L, K) plus the
# title, rhythm, tempo and voice. Annotation fields (N:, Z:, B:, H:, O:, S:, ...) and
# % comments are dropped: they are noise a character model should not spend capacity on.
KEEP_FIELDS = set("TMLKRQVP")
VAL_FRACTION = 0.05
SPLIT_SEED = 20240601  # fixed: the train/validation split never moves between runs or machines

# Training carries the LSTM state across tunes, so a tune always starts after the end of
# another one; a zero state never occurs there. Sampling therefore first runs the model over
# this short real-style tune (BOS tune EOS) so that the sampled tune starts from a state
# like the ones seen in training (without it, the first line is often garbage).
BURN_IN = ("T:Burn-in Reel\nM:4/4\nL:1/8\nR:reel\nK:D\n|:DFAF DFAF|GBdB AFD2|DFAF DFAF|GBAG FDD2:|\n"
           "|:fdad fdad|gbag fed2|fdad fdAF|GBAG FDD2:|")

TRANSPOSE_RANGE = (-5, 6)  # semitones of --transpose: every key once, none more than a fourth/tritone away
EVAL_SEQ_LEN = 256  # characters per chunk when scoring a stream (state carried across chunks)
SAMPLE_BATCH = 64  # tunes sampled at once by `eval generate`


@dataclass
class TrainOptions:
    """`songkit train generate`'s own options (field names = CLI option names with - -> _)."""

    model: str = DEFAULT_MODEL
    seq_len: int = 128
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    vocab: str = "corpus"  # ascii measured no better (docs/generate.md, leave-one-collection-out)
    limit: int = 0  # use only the first N tunes (0: all)
    init: str | None = None  # "default" or a generate checkpoint to fine-tune
    transpose: bool = False  # each epoch, each training tune in a random key (-5..+6 semitones; transpose.py)
