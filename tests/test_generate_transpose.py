"""ABC transposition (tasks/generate/transpose.py): exact pitches checked with music21 on real corpus tunes."""

import random
import re

import pytest

from songkit.tasks.generate.transpose import plan, transpose_tune


def _pitches(text: str) -> list[int]:
    from music21 import converter, harmony

    score = converter.parse("X:1\n" + text, format="abc")
    # chord symbols are left out: music21 also reads dynamics such as "f" in quotes as an F chord
    return [p.midi for n in score.recurse().notes if not isinstance(n, harmony.ChordSymbol) for p in n.pitches]


def test_key_plans_spell_the_new_key_with_fewest_accidentals():
    assert plan("G", 2) == (1, "A")
    assert plan("G", -2) == (-1, "F")
    assert plan("D", 1) == (1, "Eb")  # not D# (9 sharps)
    assert plan("Ador", 3) == (2, "Cdor")
    assert plan("Em", 6) == (4, "Bbm")  # A#m would need 7 sharps
    assert plan("F#m clef=bass", -1) == (0, "Fm clef=bass")
    assert plan("G clef=bass", 2) == (1, "A clef=bass") and plan("D major", -2) == (-1, "C major")
    assert plan("HP", 2) is None and plan("D exp ^g", 2) is None and plan("none", 1) is None


def test_golden_transpositions():
    tune = 'T:t\nM:4/4\nL:1/8\nK:G\n"G"GABc d2^cd|"D7/F#"e=fg_a b2z2|]\nw:la la'
    assert transpose_tune(tune, 2) == 'T:t\nM:4/4\nL:1/8\nK:A\n"A"ABcd e2^de|"E7/G#"f=ga_b c\'2z2|]\nw:la la'
    assert transpose_tune(tune, -7) == 'T:t\nM:4/4\nL:1/8\nK:C\n"C"CDEF G2^FG|"G7/B"A_Bc_d e2z2|]\nw:la la'
    # decorations, annotations, inline fields and comments stay; an inline key moves
    tune = 'K:D\n!trill!A2 "^rit."B [M:3/4] [K:Bm] ^A,B, % c d\n'
    assert transpose_tune(tune, 1) == 'K:Eb\n!trill!B2 "^rit."c [M:3/4] [K:Cm] =B,C % c d\n'
    assert transpose_tune("K:C\n^^B", 3) == "K:Eb\n^^d"  # B## = C#, up 3 = E: D##
    assert transpose_tune("K:C\n__C", 1) is None  # Cbb = Bb, up 1 = B: would need Dbbb
    assert transpose_tune("K:HP\nABc", 2) is None
    with pytest.raises(ValueError):
        transpose_tune("K:C\nC", 12)


def test_transposed_corpus_tunes_parse_with_the_exact_pitches():
    pytest.importorskip("music21")
    from songkit.tasks.generate.data import collection_of, embedded_corpus_files, read_file_tunes

    rng = random.Random(7)
    files = embedded_corpus_files()
    by_collection = {}
    for f in files:
        by_collection.setdefault(collection_of(f), []).append(f)
    tunes = []
    for name in ("oneills1850", "airdsAirs", "ryansMammoth", "essenFolksong", "miscFolk", "nottingham-dataset"):
        for f in rng.sample(by_collection[name], min(4, len(by_collection[name]))):
            tunes.append(rng.choice(read_file_tunes(f)))
    moved = 0
    for tune in tunes:
        k = rng.choice([k for k in range(-5, 7) if k])
        out = transpose_tune(tune, k)
        if out is None or re.search(r"[A-Ga-g]:", tune.split("K:", 1)[1]):
            continue  # music21 reads a note before ':' ("FA::") as a field and drops it; the text is right
        moved += 1
        assert [p + k for p in _pitches(tune)] == _pitches(out), (k, tune[:200])
    assert moved >= 16, moved
