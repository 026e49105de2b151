"""The README's shell blocks, as tests/docs/test_readme.py runs them.

Every fenced ```sh block of README.md is run, in order, unless the lines just above it hold
`<!-- readme-test: skip: <reason> -->`. `<!-- readme-test: expect: <text> -->` there adds a
text the block's output must contain. Other shell spellings (```bash, ```console, …) are
refused, so that no command escapes the test by its fence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!--\s*readme-test:\s*(skip|expect):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
OTHER_SHELLS = {"bash", "shell", "console", "zsh", "shell-session"}


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    text: str
    skip: str | None = None  # the reason, when the test does not run it
    expect: list[str] = field(default_factory=list)


def shell_blocks(path: Path) -> list[Block]:
    """The ```sh blocks of a Markdown file with the markers written just above each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        language = opening.group(1)
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{path.name}:{i + 1}: a fenced block is never closed")
        if language in OTHER_SHELLS:
            raise ValueError(
                f"{path.name}:{i + 1}: write shell blocks as ```sh so that the README test runs them"
            )
        if language == "sh":
            block = Block(line=i + 1, text="\n".join(lines[i + 1 : end]))
            above = i - 1
            while above >= 0 and (not lines[above].strip() or MARKER.match(lines[above].strip())):
                marker = MARKER.match(lines[above].strip())
                if marker and marker.group(1) == "skip":
                    if not marker.group(2):
                        raise ValueError(f"{path.name}:{above + 1}: a skip marker must give its reason")
                    block.skip = marker.group(2)
                elif marker:
                    block.expect.append(marker.group(2))
                above -= 1
            blocks.append(block)
        i = end + 1
    return blocks
