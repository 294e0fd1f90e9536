"""The fuzz targets' seed corpora, replayed without atheris.

Each file in ``tests/fuzz/corpus/<target>/`` goes through the target's
``one_input``, the function atheris calls when fuzzing, so that the suite
checks the same contract on every run: a documented refusal or success,
in bounded time.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
TARGETS = ("jwt_parser", "sts_form", "trust_yaml")
SEEDS = [
    pytest.param(target, path, id=f"{target}/{path.name}")
    for target in TARGETS
    for path in sorted((CORPUS / target).iterdir())
]


@pytest.mark.parametrize(("target", "seed"), SEEDS)
def test_seed_is_handled_within_the_contract(target: str, seed: Path) -> None:
    module = importlib.import_module(f"tests.fuzz.{target}")

    module.one_input(seed.read_bytes())


def test_every_target_has_seeds_and_every_corpus_a_target() -> None:
    corpora = {path.name for path in CORPUS.iterdir() if path.is_dir()}

    assert corpora == set(TARGETS)
    assert all(any((CORPUS / target).iterdir()) for target in TARGETS)


def test_replaying_needs_no_atheris() -> None:
    for target in TARGETS:
        importlib.import_module(f"tests.fuzz.{target}")

    assert "atheris" not in sys.modules
