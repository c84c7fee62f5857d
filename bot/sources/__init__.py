"""Fetching and polling: git and HTTP fetchers, the checkers that find new versions, the poll."""
