"""The Mastodon channel (issue #31): a week as a self-thread on the operator's account, one status per post.

`settings.py` (the `[mastodon]` table), `text.py` (digest text made inert, the length as Mastodon counts it),
`compose.py` (a week's statuses fitted into the instance's limits), `client.py` (Mastodon.py: the instance's
limits, post, read back, failures classified) and `channel.py` (`MastodonChannel`, an ordered channel).
"""
