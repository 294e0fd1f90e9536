"""Coverage-guided fuzz targets (atheris), one module per target.

Each module defines ``one_input(data: bytes) -> None``, which feeds one input
to the code under test and raises only when the documented contract is
broken; run as ``python -m tests.fuzz.<target> [libFuzzer options]`` it
fuzzes under atheris. ``tests/unit/test_fuzz_corpus.py`` replays the seed
corpus in ``corpus/<target>/`` through the same function without atheris.
"""
