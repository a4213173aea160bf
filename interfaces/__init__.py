"""tropegraph's interfaces: the ``tropegraph`` command line (and, next, the web explorer and the MCP server).

The arrows point one way: ``vault_schema`` ← ``indexer`` (write side) ← ``queries`` (read side) ←
``interfaces``. Everything here is thin: it parses arguments, calls the same library functions and
renders their results. Importing this package imports nothing heavy.
"""
