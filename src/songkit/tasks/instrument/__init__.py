"""Instrument-family classification on NSynth-format data (NSynth's 11 families).

spec.py: constants and the GM program -> family map; data.py: the NSynth reader, the SoundFont
renderer and the embedded set; model.py: the models; task.py: train, predict, evaluate.
"""
