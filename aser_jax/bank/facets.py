"""The five sensory facets, in the bank's fixed order (ASER_SPEC notation)."""

FACETS = ("visual", "tactile", "auditory", "olfactory", "gustatory")
POLARITIES = ("positive", "negative", "neutral")
EPS = 1e-6
