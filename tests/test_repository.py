"""The repository stands alone: no tracked file points at a document or a path outside it, and the
documentation's links lead to files that are in it."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Design documents that once lived beside the repository, the folder they lived in, and absolute
# paths of a developer's machine. (Deploy files may name /opt/switchboard: that is this checkout.)
OUTSIDE = re.compile(
    r"\.\./shared\b|[\"' ]shared/kapso|\b(?:DESIGN|REFERENCE|PERFORMANCE|CONVENTIONS)\.md\b"
    r"|ROOT\.parent\b|(?<![\w.])/(?:work|home|root|tmp)/[\w.-]+/"
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_tracked_file_refers_to_anything_outside_the_repository():
    found = []
    for name in tracked_files():
        if name == THIS:
            continue
        try:
            text = (ROOT / name).read_text()
        except UnicodeDecodeError:
            continue  # binary
        found += [f"{name}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]

    assert found == []


def test_every_relative_link_of_the_documentation_leads_to_a_file_in_the_repository():
    broken = []
    for name in tracked_files():
        if not name.endswith(".md"):
            continue
        for target in MARKDOWN_LINK.findall((ROOT / name).read_text()):
            if re.match(r"[a-z]+:|#", target):
                continue  # a web address or an anchor on the same page
            path = ((ROOT / name).parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{name}: {target}")

    assert broken == []


def test_the_documents_the_readme_names_are_in_the_repository():
    readme = (ROOT / "README.md").read_text()

    for doc in ("docs/architecture.md", "docs/kapso.md", "docs/operations.md"):
        assert f"`{doc}`" in readme
        assert (ROOT / doc).is_file()


def test_each_part_of_the_kapso_page_links_to_kapsos_documentation():
    parts = re.split(r"^## ", (ROOT / "docs" / "kapso.md").read_text(), flags=re.M)[1:]

    assert len(parts) >= 8
    for part in parts:
        title = part.splitlines()[0]
        assert "https://docs.kapso.ai/" in part, title
