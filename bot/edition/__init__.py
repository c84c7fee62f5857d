"""What an edition says, below every channel: the channel-neutral `Edition` and how it is read from the store, the
credit line, excerpts, and untrusted text made safe to show anywhere."""
