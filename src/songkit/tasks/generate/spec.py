"""Constants of the generate task (no torch)."""

TASK = "generate"
ABC_SUFFIXES = (".abc",)

# Special characters of the vocabulary (never in ABC text): unknown, begin and end of a tune.
UNK, BOS, EOS = "\x00", "\x02", "\x03"
SPECIALS = (UNK, BOS, EOS)

# Header fields kept for training: the musical ones (folk-rnn keeps M, L, K) plus the
# title, rhythm, tempo and voice. Annotation fields (N:, Z:, B:, H:, O:, S:, ...) and
# % comments are dropped: they are noise a character model should not spend capacity on.
KEEP_FIELDS = set("TMLKRQVP")
VAL_FRACTION = 0.05
SPLIT_SEED = 20240601  # fixed: the train/validation split never moves between runs or machines
