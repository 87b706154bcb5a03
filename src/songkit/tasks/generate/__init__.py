"""generate: SongRNN, a character-level LSTM over ABC notation (folk-rnn / char-rnn style)."""
