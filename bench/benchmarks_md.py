"""Writes one section of docs/BENCHMARKS.md (or of another page of figures, docs/RELIABILITY.md for the fault run)
for the benchmark scripts in bench/: the section starts with its "## Title" line and replaces the section of that
title, or is appended. Prints the section. Run as a script, it writes the section in the file given."""

import os
import re

PATH = "docs/BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery figure here was written by the command named with it, on the machine it names.\n"


def write_section(section, path=PATH):
    title = section.split("\n", 1)[0]
    text = open(path).read() if os.path.exists(path) else HEADER
    if title + "\n" in text:
        text = re.sub(re.escape(title) + r"\n.*?(?=\n## |\Z)", lambda _: section.rstrip() + "\n", text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section
    open(path, "w").write(text)
    print(section)


if __name__ == "__main__":
    import sys

    # benchmarks_md.py SECTION_FILE [PAGE]
    write_section(open(sys.argv[1]).read(), *sys.argv[2:3])
