"""Audio to expression: the actor's lower-face coefficients from speaker-robust audio features."""
