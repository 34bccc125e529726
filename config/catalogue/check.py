#!/usr/bin/env python3
"""Validate the concept catalogue in config/catalogue/*.toml.

Standard library only (Python 3.11+ for tomllib). Checks every file present:
  - file layout: top-level `domain`, `title`, `[[concept]]`; domain == file name
  - concept fields, types, slug pattern, title/summary length limits
  - no slug or domain uses the `x-` prefix (reserved for org concepts)
  - slugs unique across all files
  - prerequisites/related resolve to slugs in the files present, no self links,
    no duplicates, `related` does not repeat a prerequisite
  - prerequisite graph is acyclic
  - matchers: the four lists exist, hold non-empty strings, at least one is
    non-empty; extensions start with a dot
Prints per-domain counts and the total; exits 1 on any problem.

Usage: python3 config/catalogue/check.py [CATALOGUE_DIR]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
MIN_CONCEPTS_PER_DOMAIN = 21
# Reserved for the concepts and domains an org adds (src/catalogue/custom.rs).
CUSTOM_PREFIX = "x-"
MAX_TITLE = 80
MAX_SUMMARY = 200
FILE_KEYS = {"domain", "title", "concept"}
CONCEPT_KEYS = {"slug", "title", "summary", "prerequisites", "related", "matchers"}
MATCHER_KEYS = ("extensions", "imports", "keywords", "apis")


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    files = sorted(root.glob("*.toml"))
    errors: list[str] = []
    if not files:
        print(f"no *.toml files under {root}", file=sys.stderr)
        return 1

    concepts: dict[str, dict] = {}  # slug -> concept
    where: dict[str, str] = {}  # slug -> file name
    counts: dict[str, int] = {}
    domains_seen: dict[str, str] = {}

    for path in files:
        name = path.name
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{name}: TOML parse error: {exc}")
            continue

        for key in sorted(set(doc) - FILE_KEYS):
            errors.append(f"{name}: unknown top-level key {key!r}")
        domain = doc.get("domain")
        if not isinstance(domain, str) or not SLUG_RE.match(domain):
            errors.append(f"{name}: `domain` must be a slug string, got {domain!r}")
        elif domain.startswith(CUSTOM_PREFIX):
            errors.append(f"{name}: domain {domain!r}: the {CUSTOM_PREFIX!r} prefix is reserved for org domains")
        elif domain != path.stem:
            errors.append(f"{name}: domain {domain!r} does not match file name {path.stem!r}")
        elif domain in domains_seen:
            errors.append(f"{name}: domain {domain!r} also declared in {domains_seen[domain]}")
        else:
            domains_seen[domain] = name
        title = doc.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            errors.append(f"{name}: `title` must be a non-empty string of at most {MAX_TITLE} chars")

        items = doc.get("concept")
        if not isinstance(items, list) or not items:
            errors.append(f"{name}: no [[concept]] entries")
            items = []
        counts[path.stem] = len(items)
        if len(items) < MIN_CONCEPTS_PER_DOMAIN:
            errors.append(f"{name}: {len(items)} concepts, expected at least {MIN_CONCEPTS_PER_DOMAIN}")

        for i, c in enumerate(items):
            errors.extend(check_concept(name, i, c))
            slug = c.get("slug") if isinstance(c, dict) else None
            if isinstance(slug, str):
                if slug in concepts:
                    errors.append(f"{name}: slug {slug!r} already defined in {where[slug]}")
                else:
                    concepts[slug] = c
                    where[slug] = name

    # References resolve within the files present.
    for slug, c in concepts.items():
        for field in ("prerequisites", "related"):
            refs = c.get(field)
            if not isinstance(refs, list):
                continue
            for ref in refs:
                if isinstance(ref, str) and ref not in concepts:
                    errors.append(f"{where[slug]}: {slug}: {field} names unknown slug {ref!r}")

    # Prerequisites must be acyclic (iterative DFS, white/grey/black).
    state: dict[str, int] = {}
    for start in concepts:
        if state.get(start):
            continue
        stack = [(start, iter(prereqs(concepts, start)))]
        state[start] = 1
        path_nodes = [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path_nodes.pop()
                continue
            st = state.get(nxt, 0)
            if st == 1:
                cycle = path_nodes[path_nodes.index(nxt):] + [nxt]
                errors.append("prerequisite cycle: " + " -> ".join(cycle))
            elif st == 0:
                state[nxt] = 1
                path_nodes.append(nxt)
                stack.append((nxt, iter(prereqs(concepts, nxt))))

    width = max((len(d) for d in counts), default=6)
    for domain, n in sorted(counts.items()):
        print(f"{domain:<{width}}  {n:>4}")
    print(f"{'total':<{width}}  {sum(counts.values()):>4}  ({len(counts)} domains)")

    if errors:
        print(f"\n{len(errors)} problem(s):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def prereqs(concepts: dict[str, dict], slug: str) -> list[str]:
    refs = concepts[slug].get("prerequisites")
    if not isinstance(refs, list):
        return []
    return [r for r in refs if isinstance(r, str) and r in concepts]


def check_concept(name: str, i: int, c: object) -> list[str]:
    errs: list[str] = []
    if not isinstance(c, dict):
        return [f"{name}: concept #{i + 1} is not a table"]
    label = f"{name}: {c.get('slug', f'concept #{i + 1}')}"
    for key in sorted(set(c) - CONCEPT_KEYS):
        errs.append(f"{label}: unknown key {key!r}")
    for key in sorted(CONCEPT_KEYS - set(c)):
        errs.append(f"{label}: missing key {key!r}")

    slug = c.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        errs.append(f"{label}: slug {slug!r} does not match {SLUG_RE.pattern}")
    elif slug.startswith(CUSTOM_PREFIX):
        errs.append(f"{label}: the {CUSTOM_PREFIX!r} prefix is reserved for org concepts")

    title = c.get("title")
    if not isinstance(title, str) or not title.strip():
        errs.append(f"{label}: title must be a non-empty string")
    elif len(title) > MAX_TITLE:
        errs.append(f"{label}: title is {len(title)} chars (max {MAX_TITLE})")

    summary = c.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errs.append(f"{label}: summary must be a non-empty string")
    else:
        if len(summary) > MAX_SUMMARY:
            errs.append(f"{label}: summary is {len(summary)} chars (max {MAX_SUMMARY})")
        if "\n" in summary:
            errs.append(f"{label}: summary must be a single line")
        if summary != summary.strip() or not summary.endswith("."):
            errs.append(f"{label}: summary must be one trimmed sentence ending with '.'")

    lists = {}
    for field in ("prerequisites", "related"):
        refs = c.get(field)
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            errs.append(f"{label}: {field} must be a list of strings")
            continue
        lists[field] = refs
        if len(set(refs)) != len(refs):
            errs.append(f"{label}: {field} has duplicates")
        if slug in refs:
            errs.append(f"{label}: {field} names the concept itself")
    if "prerequisites" in lists and "related" in lists:
        both = set(lists["prerequisites"]) & set(lists["related"])
        if both:
            errs.append(f"{label}: related repeats prerequisites {sorted(both)}")

    m = c.get("matchers")
    if not isinstance(m, dict):
        errs.append(f"{label}: [concept.matchers] table missing")
        return errs
    for key in sorted(set(m) - set(MATCHER_KEYS)):
        errs.append(f"{label}: unknown matcher key {key!r}")
    non_empty = 0
    for key in MATCHER_KEYS:
        vals = m.get(key)
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            errs.append(f"{label}: matchers.{key} must be a list of strings")
            continue
        if vals:
            non_empty += 1
        if any(not v.strip() or v != v.strip() for v in vals):
            errs.append(f"{label}: matchers.{key} has empty or padded entries")
        if len(set(vals)) != len(vals):
            errs.append(f"{label}: matchers.{key} has duplicates")
        if key == "extensions":
            for v in vals:
                if not re.match(r"^\.[A-Za-z0-9][A-Za-z0-9.+_-]*$", v):
                    errs.append(f"{label}: extension {v!r} must start with a dot")
    if non_empty == 0:
        errs.append(f"{label}: every matcher list is empty")
    return errs


if __name__ == "__main__":
    sys.exit(main())
