"""tropegraph's read side: search, similar turns, metaphors, timelines. Never writes the index."""
