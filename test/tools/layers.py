#!/usr/bin/env python3
"""The C files of the extension form layers: no file uses a global symbol of a
file that (directly or not) uses one of its own.

Reads the built objects with nm: an object "uses" another when one of its
undefined symbols is a global the other defines.  Prints every cycle (each
strongly connected group of objects, with the symbols that tie it) and exits
1 if there is one; otherwise prints the files layer by layer, bottom first.

    python3 test/tools/layers.py src/*.o
"""
import subprocess
import sys
from collections import defaultdict


def symbols(obj, *flags):
    out = subprocess.run(["nm", *flags, obj], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def strongly_connected(nodes, edges):
    """Tarjan's algorithm, iterative; returns the groups in reverse topological order."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop(); on_stack.discard(member); group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group))
    return groups


def main(objects):
    defined = {o: symbols(o, "-g", "--defined-only") for o in objects}
    owner = {s: o for o, syms in defined.items() for s in syms}
    edges, why = defaultdict(set), defaultdict(set)
    for o in objects:
        for s in symbols(o, "-u"):
            target = owner.get(s)
            if target and target != o:
                edges[o].add(target)
                why[(o, target)].add(s)
    groups = strongly_connected(sorted(objects), edges)
    cycles = [g for g in groups if len(g) > 1]
    for g in cycles:
        print("cycle: " + " ".join(g))
        for a in g:
            for b in g:
                if b in edges[a]:
                    print(f"   {a} uses {b}: {', '.join(sorted(why[(a, b)]))}")
    if cycles:
        print(f"layers: {len(cycles)} cycles among {sum(len(g) for g in cycles)} of {len(objects)} files")
        return 1
    level = {}
    for g in groups:            # dependencies come first in Tarjan's output
        o = g[0]
        level[o] = 1 + max((level[t] for t in edges[o]), default=-1)
    for n in range(max(level.values(), default=-1) + 1):
        print(f"layer {n}: " + " ".join(sorted(o.rsplit('/', 1)[-1] for o in level if level[o] == n)))
    print(f"layers: 0 cycles among {len(objects)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
