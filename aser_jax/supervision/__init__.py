"""Stage 2: teacher records -> per-facet supervision (ASER_SPEC §2)."""
