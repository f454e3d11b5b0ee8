#!/usr/bin/env python3
"""The import structure of one crate's modules: which file uses which, the circles
among files and among folders, and the file sizes.

    scripts/module-graph.py [crates/proxy/src] [--edges]

A file's module path comes from where it lies (`forward/plan.rs` is
`crate::forward::plan`, `mod.rs` is its folder). An edge goes from a file to every
module it names by a `crate::` or `super::` path, in `use` items or inline; a path
is resolved to the longest module prefix that is a file, so `crate::forward::plan::Plan`
is an edge to `forward/plan.rs`. Tests are left out (a file's `#[cfg(test)] mod
tests`, files named `tests.rs`): tests may reach across.

Printed: files, lines (median, largest), the file-level circles (strongly connected
components of more than one file), the folder-level graph (a folder is the first path
component; files at the crate root are their own nodes), its circles, and the edges
that close them ("upward" imports: from a folder to one that imports it, directly or
not). Exit status 1 when any circle exists.
"""

import os
import re
import statistics
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_path(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        # Strings rarely hold `crate::`; comments often do.
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def expand_group(text, start):
    """Given text[start] == '{', returns (list of path suffixes, end index)."""
    depth, i, items, cur = 0, start, [], ""
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
            if depth > 1:
                sub, i = expand_group(text, i)
                items.extend(cur.strip() + s for s in sub)
                cur = None
                i += 1
                continue
        elif c == "}":
            depth -= 1
            if cur is not None and cur.strip():
                items.append(cur.strip())
            return items, i
        elif c == ",":
            if cur is not None and cur.strip():
                items.append(cur.strip())
            cur = ""
        else:
            if cur is None:
                cur = ""
            else:
                cur += c
        i += 1
    return items, i


def referenced_paths(text, me):
    """Absolute module paths (tuples) this file names."""
    found = []
    for m in re.finditer(r"\b(crate|super)((?:::(?:" + IDENT + r"))*)::(\{)?", text):
        root, rest, group = m.group(1), m.group(2), m.group(3)
        base = [] if root == "crate" else list(me[:-1])
        prefix = base + [p for p in rest.split("::") if p]
        if group:
            items, _ = expand_group(text, m.end() - 1)
            for item in items:
                item = re.sub(r"\s+as\s+" + IDENT, "", item).replace(" ", "")
                found.append(tuple(prefix + [p for p in item.split("::") if p]))
        else:
            tail = re.match(IDENT, text[m.end():])
            found.append(tuple(prefix + ([tail.group(0)] if tail else [])))
    return found


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_edges = "--edges" in sys.argv
    root = args[0] if args else "crates/proxy/src"
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, n), root)
                files[module_path(rel)] = rel
    lines = {rel: sum(1 for _ in open(os.path.join(root, rel))) for rel in files.values()}

    def is_test(rel):
        parts = rel.split(os.sep)
        return parts[-1] == "tests.rs" or "tests" in parts[:-1]

    graph = {}
    for mod, rel in files.items():
        if is_test(rel):
            continue
        text = strip_comments(open(os.path.join(root, rel)).read())
        # A file's inline tests (`#[cfg(test)] mod tests`, last by convention)
        # may reach across, as test files do.
        cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
        if cut:
            text = text[: cut.start()]
        deps = set()
        for path in referenced_paths(text, mod):
            for k in range(len(path), 0, -1):
                if path[:k] in files:
                    target = path[:k]
                    break
            else:
                continue
            if target != mod and target != () and not is_test(files[target]):
                deps.add(target)
        graph[mod] = deps

    name = lambda m: files[m]
    sizes = sorted(lines.values())
    print(f"{len(files)} files, {sum(sizes)} lines; median {statistics.median(sizes):.0f}, "
          f"largest {sizes[-1]} ({max(lines, key=lines.get)})")
    over = sorted((n, r) for r, n in lines.items() if n > 600)
    print(f"files over 600 lines: {len(over)}" + "".join(f"\n  {n} {r}" for n, r in over))

    file_cycles = [c for c in sccs(graph, graph) if len(c) > 1]
    print(f"file-level circles: {len(file_cycles)}")
    for c in file_cycles:
        print("  " + ", ".join(name(m) for m in c))

    folder = lambda m: m[0] if m else "lib"
    fgraph = {}
    for m, deps in graph.items():
        for d in deps:
            a, b = folder(m), folder(d)
            if a != b and b != "lib":
                fgraph.setdefault(a, set()).add(b)
    nodes = {folder(m) for m in graph}
    comps = sccs(nodes, fgraph)
    folder_cycles = [c for c in comps if len(c) > 1]
    comp_of = {v: i for i, c in enumerate(comps) for v in c}
    upward = []
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            a, b = folder(m), folder(d)
            if a != b and b != "lib" and comp_of[a] == comp_of[b]:
                upward.append((name(m), name(d)))
    print(f"folders: {len(nodes)}; folder-level circles: {len(folder_cycles)}")
    for c in folder_cycles:
        print("  " + ", ".join(c))
    print(f"imports inside folder circles (upward): {len(upward)}")
    for a, b in upward:
        print(f"  {a} -> {b}")
    if show_edges:
        print("folder edges:")
        for a in sorted(fgraph):
            print(f"  {a} -> {', '.join(sorted(fgraph[a]))}")
    sys.exit(1 if file_cycles or folder_cycles else 0)


if __name__ == "__main__":
    main()
