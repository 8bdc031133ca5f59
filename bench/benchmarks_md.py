"""Writes one section of docs/BENCHMARKS.md for the benchmark scripts in bench/: the section starts with its
"## Title" line and replaces the section of that title, or is appended. Prints the section."""

import os
import re

PATH = "docs/BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery figure here was written by the command named with it, on the machine it names.\n"


def write_section(section):
    title = section.split("\n", 1)[0]
    text = open(PATH).read() if os.path.exists(PATH) else HEADER
    if title + "\n" in text:
        text = re.sub(re.escape(title) + r"\n.*?(?=\n## |\Z)", lambda _: section.rstrip() + "\n", text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section
    open(PATH, "w").write(text)
    print(section)
