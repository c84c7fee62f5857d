"""The pipeline every channel shares: planning, the ledger, dispatch, rate limits, safe text."""
