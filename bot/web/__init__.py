"""The public web app (unsubscribe, editions) and the thread that runs it beside the daemon."""
