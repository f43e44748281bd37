"""10,000 mutated, truncated and random bitstreams to POST /decompress: 200 or 4xx, never 5xx."""

from collections import Counter

import httpx
import numpy as np

from tests.fuzzing import mutate
from tests.service.api.routes.test_compress import _png

CASES = 10_000


def test_post_decompress_answers_every_mutation_with_200_or_4xx(http: httpx.Client, kodak_image) -> None:
    small = np.ascontiguousarray(kodak_image[:40, :72])
    base = http.post(
        "/compress",
        files={"image": ("x.png", _png(small), "image/png")},
        data={"bpp": "0.8"},
        headers={"Accept": "application/octet-stream"},
    ).content
    rng = np.random.default_rng(2026)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    for _ in range(CASES):
        response = http.post("/decompress", content=mutate(base, rng), timeout=30)
        statuses[response.status_code] += 1
        assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
        if response.status_code != 200:
            codes[response.json()["error"]["code"]] += 1
    assert sum(statuses.values()) == CASES
    assert statuses[422] > CASES // 2  # most mutations are caught as invalid bitstreams
    print(f"\n{CASES} mutated bitstreams: statuses {dict(statuses)}, error codes {dict(codes)}")
