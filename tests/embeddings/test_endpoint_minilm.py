"""The built-in local embeddings model, all-MiniLM-L6-v2, behind POST /v1/embeddings:
the openai SDK gets the float graph's vectors (sentence-transformers' own, see
test_parity), free and never leaving the process, billed at cost 0 with the
encoder's own token count."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import numpy as np
import openai
import pytest

from modelyard.catalog.defaults import default_config
from modelyard.engine import build_engine
from modelyard.ledger import InMemoryLedger
from modelyard.server.app import create_app

if TYPE_CHECKING:
    from modelyard.embeddings.minilm import MiniLMEncoder

MODEL = "local/all-minilm-l6-v2"
TEXTS = ["A man is playing a guitar.", "Someone plays the guitar.", "Stock prices fell today."]


async def test_builtin_local_model_serves_minilm_vectors(
    minilm: MiniLMEncoder, modelyard_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway opens the encoder itself, from the graph the session fixture built.
    monkeypatch.setenv("MODELYARD_HOME", str(modelyard_home))
    ledger = InMemoryLedger()
    await ledger.open()
    # The built-in stack with no keys set: only the local model can embed.
    engine = build_engine(default_config(), env={}, ledger=ledger, rng=random.Random(1))
    transport = httpx2.ASGITransport(app=create_app(engine))
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
        client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="x", http_client=http)
        raw = await client.embeddings.with_raw_response.create(model="auto", input=TEXTS)
        as_floats = await client.embeddings.create(
            model=MODEL, input=TEXTS[0], encoding_format="float"
        )
    reply = raw.parse()
    assert raw.headers["x-modelyard-model"] == MODEL
    assert raw.headers["x-modelyard-cost-usd"] == "0"
    got = np.asarray([d.embedding for d in reply.data], dtype=np.float32)
    np.testing.assert_array_equal(got, minilm.encode(TEXTS))
    assert got.shape == (3, 384)
    assert float(got[0] @ got[1]) > float(got[0] @ got[2]) + 0.3
    np.testing.assert_array_equal(np.float32(as_floats.data[0].embedding), got[0])
    records = await ledger.records()
    assert [(r.model_id, r.status, r.endpoint) for r in records] == [
        (MODEL, "ok", "embeddings"),
        (MODEL, "ok", "embeddings"),
    ]
    assert records[0].input_tokens == sum(minilm.token_lengths(TEXTS)) == reply.usage.prompt_tokens
    assert records[0].cost_usd == 0
    await ledger.close()
