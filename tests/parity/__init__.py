"""Producers for the reference-fixture parity test.

Each producer takes `(relative_path, expected, ref_dir)` and returns the structure our
implementation computes for that file: the same nesting as the fixture, holding at least
every output the manifest lists a tolerance for, plus the derived integer/bool/str values
(tokens, masks, timestep maps) that we compute ourselves rather than copy. Producers read
inputs (weights, x_t, noise, prompts) from `expected` and never copy an output.
"""
