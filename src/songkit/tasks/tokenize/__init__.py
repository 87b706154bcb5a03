"""Tokenize symbolic music (MIDI, MusicXML, ABC) as CP, NB or REMI tokens; next-token models over them."""
