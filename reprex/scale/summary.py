"""The end of a run: counts per verdict, per node (bundles, verdicts, time), and the slowest
bundles; as a dict (`--json`) or rich tables on stderr. Bundle names and reasons are the
bundles' text: printed as plain text, control characters escaped."""

from __future__ import annotations

from collections import Counter, defaultdict

SLOWEST = 5
VERDICTS = ("reproduced", "different", "fixed", "flaky", "env-incompatible", "infra-error")


def summarize(results, *, wall_s: float | None = None, slowest: int = SLOWEST) -> dict:
    verdicts = Counter(r.verdict for r in results)
    nodes: dict[str, dict] = defaultdict(lambda: {"bundles": 0, "seconds": 0.0, "verdicts": Counter(), "ip": ""})
    for r in results:
        row = nodes[r.node or "-"]
        row["bundles"] += 1
        row["seconds"] += r.seconds
        row["verdicts"][r.verdict] += 1
        row["ip"] = row["ip"] or r.node_ip
    ranked = sorted((r for r in results if not r.resumed), key=lambda r: -r.seconds)[:slowest]
    return {
        "total": len(results),
        "resumed": sum(1 for r in results if r.resumed),
        "wall_s": round(wall_s, 3) if wall_s is not None else None,
        "verdicts": {v: verdicts[v] for v in (*VERDICTS, *sorted(set(verdicts) - set(VERDICTS))) if verdicts[v]},
        "nodes": [{"node": node, "ip": row["ip"], "bundles": row["bundles"], "seconds": round(row["seconds"], 3),
                   "verdicts": dict(row["verdicts"])} for node, row in sorted(nodes.items())],
        "slowest": [{"bundle": r.bundle, "verdict": r.verdict, "seconds": r.seconds, "node": r.node}
                    for r in ranked],
    }


def render(summary: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    from reprex.escape import terminal

    cell = lambda value: Text(terminal(str(value), False))  # noqa: E731
    head = f"{summary['total']} bundles"
    if summary["resumed"]:
        head += f" ({summary['resumed']} from the results file)"
    if summary["wall_s"] is not None:
        head += f" in {summary['wall_s']:.1f}s"
    console.print(Text(head, style="bold"))
    table = Table(title="per verdict", title_justify="left")
    table.add_column("verdict")
    table.add_column("bundles", justify="right")
    for verdict, count in summary["verdicts"].items():
        table.add_row(cell(verdict), str(count))
    console.print(table)
    table = Table(title="per node", title_justify="left")
    for name in ("node", "ip", "bundles", "seconds", "verdicts"):
        table.add_column(name, justify="right" if name in ("bundles", "seconds") else "left")
    for row in summary["nodes"]:
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(row["verdicts"].items()))
        table.add_row(cell(row["node"][:12]), cell(row["ip"]), str(row["bundles"]), f"{row['seconds']:.1f}",
                      cell(verdicts))
    console.print(table)
    if summary["slowest"]:
        table = Table(title="slowest", title_justify="left")
        for name in ("bundle", "verdict", "seconds", "node"):
            table.add_column(name, justify="right" if name == "seconds" else "left")
        for row in summary["slowest"]:
            table.add_row(cell(row["bundle"]), cell(row["verdict"]), f"{row['seconds']:.1f}", cell(row["node"][:12]))
        console.print(table)
