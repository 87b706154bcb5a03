"""Constants, training options and the vocabulary of the tokenize task (no torch, no numpy).

A vocabulary is fully determined by a :class:`TokenizerConfig`: every family lists
every value the config allows, so ids are stable across runs and machines, and the
vocabulary file (JSON, versioned, hashed) can always be rebuilt from its config.

Time is counted in grid steps: one step is ``1/grid`` of a quarter note (the CP
paper's 16th note for ``grid=4``). Durations are counted in ``1/duration_res`` of a
quarter note (the CP paper's 32nd note for ``duration_res=8``), from one step up to
``max_duration`` quarters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from songkit.core.music import PITCH_CLASSES

TASK = "tokenize"
VOCAB_FORMAT = "songkit-tokenize-vocab"
VOCAB_VERSION = 1
ENCODINGS = ("cp", "nb", "remi")
GROUP_ENCODINGS = ("cp", "nb")  # the models read token groups
MODEL_NAMES = ("gru", "linear")
DEFAULT_MODEL = "gru"  # the shipped checkpoint: NB + GRU on the chorales (make checkpoint-tokenize)
DEFAULT_ENCODING = "nb"
LOSSES = ("ce", "focal")
SPLITS = ("train", "valid", "test", "all")

IGN = "<ign>"  # id 0 in every family: the family is not used by this token group
CONTI = "<conti>"  # id 1 in tempo/timesig/chord: the value continues unchanged

# The CP paper's chord qualities (from the chorder library): 12 roots x 11 + N = 133.
CHORD_QUALITIES = ("M", "m", "o", "+", "7", "M7", "m7", "o7", "/o7", "sus2", "sus4")
QUALITY_INTERVALS = {
    "M": (0, 4, 7),
    "m": (0, 3, 7),
    "o": (0, 3, 6),
    "+": (0, 4, 8),
    "7": (0, 4, 7, 10),
    "M7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "o7": (0, 3, 6, 9),
    "/o7": (0, 3, 6, 10),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
}

# Families of a token group, in the order they are stored (CP uses `type`, NB uses `bar`).
GROUP_FAMILIES = {
    "cp": ("type", "beat", "tempo", "timesig", "chord", "track", "pitch", "duration", "velocity"),
    "nb": ("bar", "beat", "tempo", "timesig", "chord", "track", "pitch", "duration", "velocity"),
}
NOTE_FAMILIES = ("track", "pitch", "duration", "velocity")
CONTI_FAMILIES = ("tempo", "timesig", "chord")


@dataclass(frozen=True)
class TokenizerConfig:
    """Quantisation and vocabulary options; the defaults are the CP paper's values."""

    grid: int = 4  # onset positions per quarter note (16th notes)
    duration_res: int = 8  # duration steps per quarter note (32nd notes)
    max_duration: int = 8  # longest duration, in quarter notes (longer notes are clipped)
    velocity_bins: int = 64  # np.linspace(0, 128, 64 + 1) as in the CP repository
    tempo_min: int = 32  # tempo bins: np.linspace(32, 224, 64 + 1) bpm
    tempo_max: int = 224
    tempo_bins: int = 64
    max_bar_quarters: int = 8  # longest bar (e.g. 4/2, 8/4, 16/8)
    max_tracks: int = 16
    max_bar_skip: int = 8  # NB: largest bar jump in one `bar` token (longer gaps get empty groups)

    def check(self) -> None:
        """Raise ValueError("field: problem") for a config that cannot make a (small) vocabulary.

        Token files carry their config: it is user input, so every field is an int within bounds
        that keep the vocabulary under ~10,000 tokens (a huge ``velocity_bins`` once hung the decoder).
        """
        for name, (lo, hi) in CONFIG_BOUNDS.items():
            value = getattr(self, name)
            if type(value) is not int:
                raise ValueError(f"{name}: expected an integer, got {value!r}"[:160])
            if not lo <= value <= hi:
                raise ValueError(f"{name}: {value} is outside {lo}..{hi}")
        if self.tempo_min >= self.tempo_max:
            raise ValueError(f"tempo_min: {self.tempo_min} is not below tempo_max {self.tempo_max}")


# Bounds of every TokenizerConfig field (inclusive).
CONFIG_BOUNDS = {
    "grid": (1, 48), "duration_res": (1, 96), "max_duration": (1, 64), "velocity_bins": (1, 127),
    "tempo_min": (1, 999), "tempo_max": (2, 1000), "tempo_bins": (1, 512), "max_bar_quarters": (1, 32),
    "max_tracks": (1, 128), "max_bar_skip": (1, 64),
}


def parse_json(text: str | bytes, source: str):
    """``json.loads`` for user input: bad UTF-8, bad JSON, deep nesting and numbers too long for Python
    are one UserError naming ``source``."""
    from songkit.core.errors import UserError

    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text") from None
    except RecursionError:
        raise UserError(f"{source}: JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and ints over Python's digit limit
        raise UserError(f"{source}: not valid JSON ({str(e)[:80]})") from None


def _linspace_int(lo: int, hi: int, n: int) -> list[int]:
    """``np.linspace(lo, hi, n + 1, dtype=int)`` without numpy (truncation like numpy)."""
    return [int(lo + (hi - lo) * i / n) for i in range(n + 1)]


def velocity_values(cfg: TokenizerConfig) -> list[int]:
    """Velocity bin values: the CP bins without 0 (not a note-on), 128 clipped to 127, deduplicated."""
    vals = sorted({min(127, v) for v in _linspace_int(0, 128, cfg.velocity_bins) if v > 0})
    return vals


def tempo_values(cfg: TokenizerConfig) -> list[int]:
    """Tempo bin values in beats per minute."""
    return sorted(set(_linspace_int(cfg.tempo_min, cfg.tempo_max, cfg.tempo_bins)))


def time_signatures(cfg: TokenizerConfig) -> list[tuple[int, int]]:
    """Every time signature whose bar fits the grid and ``max_bar_quarters``."""
    out = []
    for den in (1, 2, 4, 8, 16, 32, 64):
        for num in range(1, 129):
            steps = num * 4 * cfg.grid
            if steps % den == 0 and 0 < steps // den <= cfg.max_bar_quarters * cfg.grid:
                out.append((num, den))
    return out


def bar_steps(num: int, den: int, grid: int) -> int:
    """Length of a ``num/den`` bar in grid steps (may be fractional; callers check)."""
    return num * 4 * grid // den


def chord_labels() -> list[str]:
    """N, then root_quality for 12 roots x 11 qualities."""
    return ["N"] + [f"{r}_{q}" for r in PITCH_CLASSES for q in CHORD_QUALITIES]


def build_families(cfg: TokenizerConfig) -> dict[str, list[str]]:
    """The token strings of every family, id = index."""
    positions = cfg.max_bar_quarters * cfg.grid
    return {
        "type": [IGN, "BOS", "EOS", "Metrical", "Note"],
        "bar": [IGN, "BOS", "EOS", "Same"] + [f"Bar+{k}" for k in range(1, cfg.max_bar_skip + 1)],
        "beat": [IGN, "Bar"] + [f"Pos_{p}" for p in range(positions)],
        "tempo": [IGN, CONTI] + [f"Tempo_{t}" for t in tempo_values(cfg)],
        "timesig": [IGN, CONTI] + [f"TS_{n}/{d}" for n, d in time_signatures(cfg)],
        "chord": [IGN, CONTI] + [f"Chord_{c}" for c in chord_labels()],
        "track": [IGN] + [f"Track_{t}" for t in range(cfg.max_tracks)],
        "pitch": [IGN] + [f"Pitch_{p}" for p in range(128)],
        "duration": [IGN] + [f"Dur_{d}" for d in range(1, cfg.duration_res * cfg.max_duration + 1)],
        "velocity": [IGN] + [f"Vel_{v}" for v in velocity_values(cfg)],
    }


def build_remi(families: dict[str, list[str]]) -> list[str]:
    """The flat REMI vocabulary: specials, Bar, then the values of each family."""
    def values(fam):
        return [t for t in families[fam] if t not in (IGN, CONTI)]

    remi = ["<pad>", "BOS", "EOS", "Bar"]
    remi += [t.replace("TS_", "TimeSig_") for t in values("timesig")]
    remi += [t.replace("Pos_", "Position_") for t in values("beat") if t != "Bar"]
    remi += values("tempo") + values("chord") + values("track") + values("pitch")
    remi += values("velocity") + values("duration")
    return remi


@dataclass
class Vocabulary:
    """Token strings and ids of all three encodings, made from one config."""

    config: TokenizerConfig
    families: dict[str, list[str]] = field(default_factory=dict)
    remi: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.families:
            self.families = build_families(self.config)
        if not self.remi:
            self.remi = build_remi(self.families)
        self.index = {f: {t: i for i, t in enumerate(toks)} for f, toks in self.families.items()}
        self.remi_index = {t: i for i, t in enumerate(self.remi)}

    def to_dict(self) -> dict:
        """The JSON form (without the hash)."""
        return {"format": VOCAB_FORMAT, "version": VOCAB_VERSION,
                "config": dataclasses.asdict(self.config),
                "families": self.families, "remi": self.remi}

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON, first 16 hex digits: tokens carry it to be decoded."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def sizes(self, encoding: str) -> list[int]:
        """Vocabulary size per family of ``encoding`` (cp|nb), or ``[len(remi)]``."""
        if encoding == "remi":
            return [len(self.remi)]
        return [len(self.families[f]) for f in GROUP_FAMILIES[encoding]]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary file (JSON with its hash)."""
        from songkit.core.io import atomic_write_text

        d = self.to_dict()
        d["hash"] = self.hash
        atomic_write_text(path, json.dumps(d, indent=1) + "\n")

    @classmethod
    def from_config(cls, config: dict, source: str = "tokenizer config") -> Vocabulary:
        """A vocabulary from a config dict of user input; an unknown field or a value out of bounds is a
        UserError naming ``source`` and the field (checked before anything is built)."""
        from songkit.core.errors import UserError

        if not isinstance(config, dict):
            raise UserError(f"{source}: config must be an object, got {type(config).__name__}")
        known = {f.name for f in dataclasses.fields(TokenizerConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise UserError(f"{source}: unknown config field {str(unknown[0])[:40]!r}")
        cfg = TokenizerConfig(**config)
        try:
            cfg.check()
        except ValueError as e:
            raise UserError(f"{source}: config {e}") from None
        return cls(cfg)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file; a wrong format, version or hash is a UserError."""
        from songkit.core.errors import UserError

        p = Path(path)
        try:
            d = parse_json(p.read_bytes(), str(p))
        except FileNotFoundError:
            raise UserError(f"{p}: no such vocabulary file") from None
        except IsADirectoryError:
            raise UserError(f"{p}: is a folder, expected a vocabulary JSON file") from None
        if not isinstance(d, dict) or d.get("format") != VOCAB_FORMAT:
            raise UserError(f"{p}: not a songkit tokenize vocabulary")
        if d.get("version") != VOCAB_VERSION:
            raise UserError(f"{p}: vocabulary version {d.get('version')} (this songkit reads {VOCAB_VERSION})")
        vocab = cls.from_config(d.get("config"), str(p))
        if d.get("families") != vocab.families or d.get("remi") != vocab.remi or d.get("hash") != vocab.hash:
            raise UserError(f"{p}: vocabulary hash mismatch (edited by hand?)")
        return vocab


@dataclass
class TrainOptions:
    """The options of ``songkit train tokenize`` (field names = the CLI's option names)."""

    encoding: str = DEFAULT_ENCODING
    model: str = DEFAULT_MODEL
    loss: str = "ce"
    gamma: float = 2.0
    seq_len: int = 128
    d_model: int = 256
    num_layers: int = 2
    embed_dim: int = 64
    dropout: float = 0.1
    vocab: str | None = None
