"""Discord: a week's announcement through a webhook or a bot token (issue #12); see compose.py, client.py and
channel.py."""
