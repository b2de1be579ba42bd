"""The knowledge base: store uploads, parse, chunk, embed and index them, retrieve passages for replies.

Nothing here imports torch at module level; the local embedding model loads on first use in a worker.
"""
