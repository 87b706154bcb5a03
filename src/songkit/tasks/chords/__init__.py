"""Chord recognition: 24-d bass/treble chroma in, 25 majmin classes (N, 12 major, 12 minor) out."""
