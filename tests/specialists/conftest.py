"""A specialist trained once per session on synthetic data with the hashing encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.specialists.helpers import make_rows, write_csv

ENCODER = "hashing-256"


@pytest.fixture(scope="session")
def intents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<root>/intents` holding one trained version (task 'intents')."""
    pytest.importorskip("sklearn")
    from modelyard.embeddings import load_encoder
    from modelyard.specialists.artifact import save_specialist
    from modelyard.specialists.data import load_labelled
    from modelyard.specialists.train import train_specialist

    root = tmp_path_factory.mktemp("specialists")
    data = load_labelled(write_csv(root / "train.csv", make_rows(40, seed=1)))
    trained = train_specialist(
        data, load_encoder(ENCODER), encoder_name=ENCODER, name="intents", task="intents"
    )
    save_specialist(root / "intents", trained.manifest, trained.weights)
    return root / "intents"
