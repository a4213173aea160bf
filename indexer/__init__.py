"""tropegraph's write side: the index (SQLite + FAISS), embeddings, the indexing pipeline, the watcher.

The CLI lives in :mod:`indexer.cli`; importing this package never imports click, faiss or an
embedding model.
"""
