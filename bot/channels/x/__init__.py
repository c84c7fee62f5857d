"""The X (Twitter) channel's building blocks: post texts (compose, text) and the API client (client).

Not registered in `bot/channels/__init__.py` yet: the thread needs ordered chains in `bot/publish/` (issue #11).
"""
