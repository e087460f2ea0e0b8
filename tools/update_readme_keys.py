"""Replace the README's `nas search` key table with the one rendered from nas.settings (the one definition)."""

from pathlib import Path

from nas.settings import key_table

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| key | default | meaning | allowed |"

lines = README.read_text().splitlines(keepends=True)
start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
README.write_text("".join(lines[:start]) + key_table() + "".join(lines[end:]))
print(f"README.md: key table rewritten ({end - start} lines replaced)")
