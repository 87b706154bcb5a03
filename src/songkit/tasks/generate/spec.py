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

# Training carries the LSTM state across tunes, so a tune always starts after the end of
# another one; a zero state never occurs there. Sampling therefore first runs the model over
# this short real-style tune (BOS tune EOS) so that the sampled tune starts from a state
# like the ones seen in training (without it, the first line is often garbage).
BURN_IN = "T:Burn-in Reel\nM:4/4\nL:1/8\nR:reel\nK:D\n|:DFAF DFAF|GBdB AFD2|DFAF DFAF|GBAG FDD2:|\n|:fdad fdad|gbag fed2|fdad fdAF|GBAG FDD2:|"
