"""The pure core: documents in, weeks of papers, diffs and the gate out (plus replay over git history)."""
