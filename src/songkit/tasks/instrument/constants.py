"""Constants of the instrument task: NSynth's label vocabulary, the signal chain, the GM mapping,
the model names and ``train instrument``'s own options.

No torch or numpy here (the CLI imports it). Everything derived from a few numbers (whisper-style).
"""

from __future__ import annotations

from dataclasses import dataclass

TASK = "instrument"

# NSynth's instrument families, in NSynth's index order (``instrument_family`` 0..10).
# A family absent from a split keeps its index.
FAMILIES = [
    "bass", "brass", "flute", "guitar", "keyboard", "mallet",
    "organ", "reed", "string", "synth_lead", "vocal",
]
SOURCES = ["acoustic", "electronic", "synthetic"]  # NSynth's instrument_source order
QUALITIES = [
    "bright", "dark", "distortion", "fast_decay", "long_release",
    "multiphonic", "nonlinear_env", "percussive", "reverb", "tempo-synced",
]
VELOCITIES = [25, 50, 75, 100, 127]  # NSynth's velocities
SPLITS = ["train", "valid", "test"]

# --- signal chain -----------------------------------------------------------
SAMPLE_RATE = 16000  # Hz: NSynth's rate
NOTE_SECONDS = 4.0  # NSynth: 3 s held, 1 s release
NOTE_SAMPLES = int(SAMPLE_RATE * NOTE_SECONDS)  # 64000
HOLD_SECONDS = 3.0
CLIP_SECONDS = 1.0  # the seed's models see the first second
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)  # 16000
FRAME_SAMPLES = 160  # the seed's LSTM: 160 samples per step (10 ms)
FRAME_STEPS = CLIP_SAMPLES // FRAME_SAMPLES  # 100 steps
N_FFT = 1024  # 64 ms window, 15.6 Hz bins
HOP = FRAME_SAMPLES  # 10 ms: 101 centred log-mel frames per second, the LSTM's step
N_MELS = 64
FMIN = 20.0
SILENCE_RMS = 1e-4  # below this (about -80 dBFS) an input is treated as silent

# --- General MIDI programs (0-based) -> (NSynth family, NSynth source) ------------------
# Follows the GM categories; what fits no NSynth family (pads, effects, percussion,
# timpani, orchestra hit, most ethnic instruments) is dropped. Free reeds
# (harmonica) and bagpipe/shanai go to reed, fiddle to string, banjo to guitar,
# kalimba to mallet: their sound and playing match those families.
_A, _E, _S = "acoustic", "electronic", "synthetic"


def _gm_table() -> dict[int, tuple[str, str]]:
    t: dict[int, tuple[str, str]] = {}
    for p, src in zip(range(8), [_A, _A, _E, _A, _E, _E, _A, _E]):  # pianos, harpsichord, clavinet
        t[p] = ("keyboard", src)
    for p in range(8, 16):  # chromatic percussion: celesta .. dulcimer
        t[p] = ("mallet", _A)
    # drawbar, percussive, rock, church, reed organ, accordion
    for p, src in zip(range(16, 22), [_E, _E, _E, _A, _A, _A]):
        t[p] = ("organ", src)
    t[22] = ("reed", _A)  # harmonica
    t[23] = ("organ", _A)  # tango accordion
    for p, src in zip(range(24, 32), [_A, _A, _E, _E, _E, _E, _E, _E]):
        t[p] = ("guitar", src)
    for p, src in zip(range(32, 40), [_A, _E, _E, _E, _E, _E, _S, _S]):
        t[p] = ("bass", src)
    for p in range(40, 47):  # violin .. harp (47 timpani dropped)
        t[p] = ("string", _A)
    t[48], t[49], t[50], t[51] = ("string", _A), ("string", _A), ("string", _S), ("string", _S)
    t[52], t[53], t[54] = ("vocal", _A), ("vocal", _A), ("vocal", _S)  # choir, voice oohs, synth voice
    for p, src in zip(range(56, 64), [_A, _A, _A, _A, _A, _A, _S, _S]):
        t[p] = ("brass", src)
    for p in range(64, 72):  # saxophones, oboe, english horn, bassoon, clarinet
        t[p] = ("reed", _A)
    for p in range(72, 80):  # piccolo .. ocarina
        t[p] = ("flute", _A)
    for p in range(80, 88):
        t[p] = ("synth_lead", _S)
    t[105] = ("guitar", _A)  # banjo
    t[108] = ("mallet", _A)  # kalimba
    t[109], t[111] = ("reed", _A), ("reed", _A)  # bagpipe, shanai
    t[110] = ("string", _A)  # fiddle
    return t


GM_FAMILY: dict[int, tuple[str, str]] = _gm_table()

# MIDI pitch range rendered per family (inside NSynth's 9..120, around each family's
# playing range, so a SoundFont is not asked for notes it has no samples for).
FAMILY_PITCH_RANGE: dict[str, tuple[int, int]] = {
    "bass": (28, 67), "brass": (40, 84), "flute": (60, 96), "guitar": (40, 84),
    "keyboard": (21, 108), "mallet": (48, 96), "organ": (36, 96), "reed": (36, 84),
    "string": (36, 96), "synth_lead": (36, 96), "vocal": (48, 79),
}

GM_NAMES = [
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ",
    "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar",
    "Guitar Harmonics", "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello",
    "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Voice", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo", "Flute",
    "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina", "Lead 1 (square)",
    "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)",
    "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum",
    "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise", "Seashore",
    "Bird Tweet", "Telephone Ring", "Helicopter", "Applause", "Gunshot",
]

FRONTENDS = ("logmel", "pcen")
MODEL_NAMES = ("linear", "lstm", "blstm", "cnn1d", "cnn2d", "cnn2d_deep", "samplecnn")
DEFAULT_MODEL = "cnn2d"  # the shipped checkpoint's model

# --- limits of what songkit reads from an examples.json ---------------------------------
MAX_JSON_DEPTH = 32  # an NSynth entry is 3 levels deep; deeper nesting is refused before parsing
MIDI_PITCHES = (0, 127)
MIDI_VELOCITIES = (0, 127)


@dataclass
class TrainOptions:
    """`songkit train instrument`'s own options (field names = CLI option names with - -> _)."""

    model: str = DEFAULT_MODEL
    augment: bool = False
    mixup: float = 0.2
    timbre: bool = False  # with augment: random EQ and synthetic reverb too
    frontend: str = "logmel"  # log-mel models: logmel | pcen
    skip_bad: bool = False
    limit: int = 0  # a seeded random N training notes (validation N/4); 0: all
