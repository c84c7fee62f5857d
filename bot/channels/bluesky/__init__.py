"""The Bluesky channel (issue #30): a thread per week on Bluesky, over a small XRPC client of paperbot's own."""
