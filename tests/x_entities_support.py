"""twitter-text's own entity extractor, for the tests: which hashtags, cashtags, mentions and URLs X links.

twitter-text-parser (the Python package paperbot uses for X's weighted length) ports only twitter-text's URL
and emoji extraction. The official twitter-text library (npm `twitter-text`, pinned by package.json and
package-lock.json beside the MJML validator; `make test` installs it) has the extractor X's clients use:
`extractEntitiesWithIndices` finds hashtags (`#` and `＃`), cashtags, @mentions and lists, and URLs. One node
process checks a whole batch of texts. Tests skip, saying why, where node or the package is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "node_modules" / "twitter-text"

_SCRIPT = """
const tt = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((text) => tt.extractEntitiesWithIndices(text));
  process.stdout.write(JSON.stringify(out));
});
"""


def require_twitter_text() -> None:
    """Skip the calling test unless node and the npm `twitter-text` package are installed."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: twitter-text's entity extractor (npm twitter-text) cannot run")
    if not (PACKAGE / "package.json").exists():
        pytest.skip("node_modules/twitter-text missing: run `npm ci` (make test does) for twitter-text's extractor")


def entities(texts: Sequence[str]) -> list[list[dict]]:
    """twitter-text's `extractEntitiesWithIndices` of each text: dicts with `hashtag`, `cashtag`, `screenName`
    (a mention or a list) or `url`, and `indices`."""
    require_twitter_text()
    proc = subprocess.run(["node", "-e", _SCRIPT, str(PACKAGE)], input=json.dumps(list(texts)),
                          capture_output=True, text=True, encoding="utf-8", timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def hashtags(found: list[dict]) -> list[str]:
    """The hashtags among `found`, in order, each as `#name`."""
    return ["#" + e["hashtag"] for e in found if "hashtag" in e]


def stray(found: list[dict], links: set[str]) -> list[dict]:
    """The entities among `found` that are neither a hashtag nor one of `links`: cashtags, mentions, lists and
    URLs paperbot did not put there."""
    return [e for e in found if "hashtag" not in e and not ("url" in e and e["url"] in links)]
