"""The operator's side: config checks before a live send, `paperbot status`, alerts, and the log format."""
