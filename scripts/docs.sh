#!/usr/bin/env bash
# The book: builds docs/ with mdBook into docs/book/ (open
# docs/book/index.html), then checks every internal link: each link in the
# built pages, and each relative link in README.md, must name a page that
# exists and, with a #fragment, an id on that page (the ids of the built
# HTML, so mdBook's own heading ids are what counts). External http(s)
# links are not checked (no network needed).
#
# Installs mdBook (the pinned version) into ~/.cache/outflow/tools when
# missing, like cargo-deny (scripts/lib.sh): once, a few minutes of
# compiling, in a build directory of its own. A full scripts/test.sh runs
# this; a failure fails the suite, but the tests still run.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

# install_mdbook: put mdbook (the pinned version) on PATH, installing it
# from crates.io into ~/.cache/outflow/tools when missing. Only the `search`
# feature: `mdbook serve`/`watch` (a web server, file watching) are not
# needed to build.
install_mdbook() {
    local version=0.5.4 root="$HOME/.cache/outflow/tools"
    if ! have cargo && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    PATH="$root/bin:$PATH"
    if [[ "$(mdbook --version 2>/dev/null)" != "mdbook v$version" ]]; then
        have cargo || die "cargo is not installed; install Rust from https://rustup.rs"
        log "installing mdbook $version into $root (a few minutes, once)"
        CARGO_TARGET_DIR="$HOME/.cache/outflow/target-tools" \
            cargo install mdbook --version "$version" --locked --no-default-features --features search \
            --root "$root" >&2
    fi
}

install_mdbook
have python3 || die "python3 is needed to check the book's links; install it (apt-get install python3)"

log "mdbook build docs"
rm -rf docs/book
mdbook build docs

log "checking the book's internal links and anchors"
python3 - docs/book README.md <<'PY'
"""Fails on an internal link to a missing page or a missing #anchor."""
import os
import re
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

book, readme = sys.argv[1], sys.argv[2]
# Pages mdBook generates around the chapters: print.html repeats every
# chapter (its links are the chapters' own, rewritten), 404.html has none.
SKIP = {"print.html", "404.html"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append((self.getpos()[0], attrs["href"]))


pages = {}
for root, _, files in os.walk(book):
    for name in files:
        if name.endswith(".html"):
            path = os.path.normpath(os.path.join(root, name))
            parser = Page()
            with open(path, encoding="utf-8") as f:
                parser.feed(f.read())
            pages[path] = parser

errors = []


def external(href):
    return urlsplit(href).scheme in ("http", "https", "mailto", "javascript")


def check(source, line, href, base_dir, own_page):
    """A link from `source` (at `line`, if given) resolved against `base_dir`."""
    if line is not None:
        source = f"{source}:{line}"
    parts = urlsplit(href)
    fragment = unquote(parts.fragment)
    if parts.path:
        target = os.path.normpath(os.path.join(base_dir, unquote(parts.path)))
        if os.path.isdir(target):
            target = os.path.join(target, "index.html")
    else:
        target = own_page
    if target.endswith(".md") and target.startswith(os.path.normpath("docs/src") + os.sep):
        # README links into the book's sources: the anchors are the built page's.
        built = os.path.join(book, os.path.relpath(target, "docs/src"))[:-3] + ".html"
        if not os.path.exists(target):
            errors.append(f"{source}: {href}: no such page {target}")
            return
        target = os.path.normpath(built)
    if not os.path.exists(target):
        errors.append(f"{source}: {href}: no such file {target}")
        return
    if fragment and target in pages and fragment not in pages[target].ids:
        errors.append(f"{source}: {href}: no id \"{fragment}\" in {target}")


links = 0
for path, page in sorted(pages.items()):
    if os.path.basename(path) in SKIP:
        continue
    for line, href in page.links:
        if not external(href):
            links += 1
            where = os.path.relpath(path, book)
            source = f"docs/src/{where[:-5]}.md (built {path}, line {line})"
            check(source, None, href, os.path.dirname(path), path)

# README.md: [text](target) links that are not external, outside code.
with open(readme, encoding="utf-8") as f:
    text = f.read()
in_code = False
for number, line in enumerate(text.split("\n"), 1):
    if line.startswith("```"):
        in_code = not in_code
    if in_code or line.startswith("    "):
        continue
    for href in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
        if not external(href):
            links += 1
            check(readme, number, href, os.path.dirname(readme) or ".", readme)

for error in errors:
    print(f"broken link: {error}", file=sys.stderr)
if errors:
    sys.exit(f"{len(errors)} broken internal links (of {links}); fix the link or the heading it names")
print(f"{links} internal links checked in {len(pages) - len(SKIP)} pages and {readme}: all resolve")
PY
