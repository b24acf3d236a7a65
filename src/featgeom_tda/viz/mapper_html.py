"""The self-contained HTML page of a Mapper graph (inline SVG, style and script; no network), or KeplerMapper's.

The spring layout, the colours and the node summaries are computed here; the page is rendered by
:func:`featgeom_tda.viz.templating.render_template` from ``templates/mapper.html.j2`` with every data
string (tokens, concepts, names, titles) autoescaped.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core.types import json_default
from featgeom_tda.analyses.topology import MapperGraph
from featgeom_tda.core._validation import to_numpy
from featgeom_tda.viz.templating import render_template

__all__ = ["save_mapper_html", "render_mapper_html"]


def save_mapper_html(
    graph: MapperGraph,
    path: str | Path,
    *,
    self_contained: bool = True,
    color_by: Any = None,
    color_name: str | None = None,
    title: str = "Mapper graph",
    seed: int = 0,
) -> Path:
    """Write an HTML view of ``graph`` to ``path``.

    ``self_contained=True``: one file with no external resource (inline SVG drawn from a spring layout
    computed here, inline script and style): hover a node for its summary, click it for its members,
    search top tokens. ``self_contained=False``: KeplerMapper's own page (loads d3 from a CDN).
    ``color_by``: one value per feature (row), shape (n_points,); a node is coloured by its members' mean
    (default: the first lens coordinate). All data strings are escaped.
    """
    if not isinstance(graph, MapperGraph):
        raise ValueError(f"graph must be a MapperGraph; got {type(graph).__name__}")
    values, name = _color_values(graph, color_by, color_name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if self_contained:
        text = render_mapper_html(graph, values=values, color_name=name, title=title, seed=seed)
        path.write_text(text, encoding="utf-8")
        return path
    import kmapper as km

    tips = np.array([html.escape(t) for t in graph.feature_tooltips()], dtype=object)
    km.KeplerMapper(verbose=0).visualize(
        graph.to_kmapper(),
        color_values=values,
        color_function_name=html.escape(name),
        custom_tooltips=tips,
        path_html=str(path),
        title=html.escape(title),
        lens=graph.lens,
        lens_names=[f"lens {i}" for i in range(graph.lens.shape[1])],
    )
    return path


def _color_values(graph: MapperGraph, color_by: Any, color_name: str | None) -> tuple[np.ndarray, str]:
    """float64 (n_points,) colour values and their legend name."""
    if color_by is None:
        return graph.lens[:, 0], color_name or "lens 0"
    values = to_numpy(color_by, "color_by", dtype=np.float64)
    if values.ndim != 1 or values.shape[0] != graph.n_points:
        raise ValueError(f"color_by must have one value per feature, shape ({graph.n_points},); got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("color_by contains NaN or inf values; expected only finite numbers")
    return values, color_name or "color"


def _safe_json(obj: Any) -> str:
    """JSON that is inert inside a <script> element: '<', '>' and '&' become \\u escapes."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _layout(graph: MapperGraph, seed: int, width: float, height: float, margin: float) -> dict[str, tuple[float, float]]:
    """Spring layout per connected component, components packed left to right in rows by size."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(graph.node_ids)
    g.add_edges_from(graph.edges)
    comps = sorted(nx.connected_components(g), key=lambda c: (-len(c), min(c)))
    if not comps:
        return {}
    # cell sizes proportional to sqrt(component size); simple shelf packing
    weights = [math.sqrt(len(c)) for c in comps]
    total = sum(w * w for w in weights)
    unit = math.sqrt((width - 2 * margin) * (height - 2 * margin) / (1.6 * total))
    pos: dict[str, tuple[float, float]] = {}
    x0, y0, shelf = margin, margin, 0.0
    for comp, w in zip(comps, weights):
        side = max(unit * w, 24.0)
        if x0 + side > width - margin and x0 > margin:
            x0, y0, shelf = margin, y0 + shelf + 8.0, 0.0
        members = sorted(comp)
        if len(members) == 1:
            local = {members[0]: np.array([0.5, 0.5])}
        else:
            idx = {k: i for i, k in enumerate(members)}
            sub_edges = np.array([(idx[a], idx[b]) for a, b in g.subgraph(comp).edges()], dtype=np.int64).reshape(-1, 2)
            raw = _spring_layout(len(members), sub_edges, seed=seed)
            lo, hi = raw.min(axis=0), raw.max(axis=0)
            span = np.where(hi - lo > 0, hi - lo, 1.0)
            local = {k: 0.08 + 0.84 * (raw[i] - lo) / span for i, k in enumerate(members)}
        for k, v in local.items():
            pos[k] = (x0 + float(v[0]) * side, y0 + float(v[1]) * side)
        x0 += side + 8.0
        shelf = max(shelf, side)
    arr = np.array(list(pos.values()))
    ext = np.maximum(arr.max(axis=0) - margin, 1e-9)
    sx, sy = (width - 2 * margin) / ext[0], (height - 2 * margin) / ext[1]
    # fill the box, stretching one axis by at most 1.5x against the other
    sx, sy = min(sx, 1.5 * sy), min(sy, 1.5 * sx)
    return {k: (margin + (x - margin) * sx, margin + (y - margin) * sy) for k, (x, y) in pos.items()}


def _spring_layout(n: int, edges: np.ndarray, *, seed: int, iterations: int = 100) -> np.ndarray:
    """Fruchterman-Reingold layout (n, 2) in numpy: repulsion k^2/d between all nodes, attraction d^2/k
    along edges, displacement capped by a linearly cooling temperature. Seeded start."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(size=(n, 2))
    k = 1.0 / math.sqrt(n)
    temp = 0.1
    cool = temp / (iterations + 1)
    block = max(1, 2_000_000 // n)
    for _ in range(iterations):
        disp = np.empty_like(pos)
        sq = (pos**2).sum(axis=1)
        for b0 in range(0, n, block):
            p = pos[b0 : b0 + block]
            dist2 = np.maximum(sq[b0 : b0 + block, None] + sq[None, :] - 2.0 * (p @ pos.T), 1e-4)
            w = (k * k) / dist2
            w[np.arange(p.shape[0]), np.arange(b0, b0 + p.shape[0])] = 0.0
            # sum_j w_ij (p_i - p_j) = p_i sum_j w_ij - (W pos)_i
            disp[b0 : b0 + block] = p * w.sum(axis=1)[:, None] - w @ pos
        if edges.size:
            d = pos[edges[:, 0]] - pos[edges[:, 1]]
            length = np.sqrt((d**2).sum(axis=1))[:, None]
            f = d * length / k
            np.add.at(disp, edges[:, 0], -f)
            np.add.at(disp, edges[:, 1], f)
        length = np.maximum(np.sqrt((disp**2).sum(axis=1)), 1e-12)[:, None]
        pos += disp / length * np.minimum(length, temp)
        temp -= cool
    return pos


def _hex_colors(values: np.ndarray) -> tuple[list[str], list[str]]:
    """viridis hex colour per value, and a 7-stop gradient for the legend."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    t = (values - lo) / (hi - lo) if hi > lo else np.full(values.shape, 0.5)

    def hx(rgba) -> str:
        return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgba[:3])

    return [hx(cmap(float(v))) for v in t], [hx(cmap(i / 6)) for i in range(7)]


def _node_summary(k: str, a: dict[str, Any], members: np.ndarray, color_name: str, value: float) -> tuple[list[str], list[str]]:
    """Tooltip lines of one node and the words its search matches."""
    summary = [f"{k}: {members.size} features", f"{color_name} = {value:.4g}"]
    search_bits = [k]
    if a.get("top_tokens"):
        summary.append("top tokens: " + ", ".join(f"{t} ({c})" for t, c in a["top_tokens"]))
        search_bits += [t for t, _ in a["top_tokens"]]
    if a.get("concept"):
        summary.append(f"concept: {a['concept']} ({100 * a['concept_share']:.0f}%)")
        search_bits.append(a["concept"])
    if "partner_fraction" in a:
        summary.append(f"with a matched partner: {100 * a['partner_fraction']:.0f}%")
    if a.get("names"):
        summary.append("e.g. " + "; ".join(a["names"]))
        search_bits += a["names"]
    summary.append("features: " + ", ".join(str(int(m)) for m in members[:30]) + (" ..." if members.size > 30 else ""))
    return summary, search_bits


def _statistics_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("features", stats["n_points"]), ("covered features", f"{stats['n_covered_points']} ({100 * stats['coverage']:.1f}%)"),
        ("nodes", stats["n_nodes"]), ("edges", stats["n_edges"]), ("connected components", stats["n_components"]),
        ("cycles of the graph (E - V + C)", stats["betti_1"]), ("loops of the nerve (Betti 1)", stats["nerve_betti_1"]),
        ("node size min / median / max", f"{stats['node_size']['min']} / {stats['node_size']['median']:g} / {stats['node_size']['max']}"),
        ("degree min / mean / max", f"{stats['degree']['min']} / {stats['degree']['mean']:.2f} / {stats['degree']['max']}"),
    ]
    return [(str(a), str(b)) for a, b in rows]


def render_mapper_html(graph: MapperGraph, *, values: np.ndarray, color_name: str, title: str, seed: int = 0,
                       max_members: int = 500) -> str:
    """The self-contained page as a string; ``values``: float64 (n_points,) colour values of the rows."""
    from markupsafe import Markup

    width, height, margin = 1000.0, 720.0, 20.0
    ann = graph.node_annotations()
    ids = graph.node_ids
    node_vals = np.array([float(values[graph.nodes[k]].mean()) if graph.nodes[k].size else 0.0 for k in ids])
    colors, stops = _hex_colors(node_vals)
    pos = _layout(graph, seed, width, height, margin)
    if pos:
        height = min(height, max(y for _, y in pos.values()) + 2 * margin)
    max_size = max([m.size for m in graph.nodes.values()] or [1])
    nodes_json, circles = [], []
    for i, k in enumerate(ids):
        a, members = ann[k], graph.nodes[k]
        summary, search_bits = _node_summary(k, a, members, color_name, node_vals[i])
        listed = members[:max_members]
        x, y = pos[k]
        r = 3.0 + 11.0 * math.sqrt(members.size / max_size)
        circles.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "r": f"{r:.1f}", "fill": colors[i], "summary": "\n".join(summary)})
        entry: dict[str, Any] = {"id": k, "size": int(members.size), "color": float(node_vals[i]),
                                 "members": listed.tolist(), "more": int(members.size - listed.size),
                                 "search": " ".join(search_bits).lower()}
        for key in ("concept", "concept_share", "partner_fraction"):
            if key in a:
                entry[key] = a[key]
        if "top_tokens" in a:
            entry["tokens"] = a["top_tokens"]
        nodes_json.append(entry)
    edges = [{"x1": f"{pos[a][0]:.1f}", "y1": f"{pos[a][1]:.1f}", "x2": f"{pos[b][0]:.1f}", "y2": f"{pos[b][1]:.1f}"}
             for a, b in graph.edges]
    data: dict[str, Any] = {"nodes": nodes_json, "color_name": color_name}
    if graph.annotations:
        data["features"] = graph.feature_tooltips()
    cfg = graph.config
    subtitle = (f"lens {cfg.get('lens', '?')}, {cfg.get('n_cubes', '?')} cubes per dimension, overlap {cfg.get('overlap', '?')}, "
                f"{cfg.get('clusterer', '?')} ({cfg.get('metric', '?')}, eps {cfg.get('eps', float('nan')):.4g})")
    lo, hi = (float(node_vals.min()), float(node_vals.max())) if node_vals.size else (0.0, 0.0)
    return render_template(
        "mapper.html.j2", title=title, subtitle=subtitle, width=f"{width:.0f}", height=f"{height:.0f}",
        edges=edges, circles=circles, color_name=color_name, gradient=", ".join(stops), low=f"{lo:.4g}",
        high=f"{hi:.4g}", rows=_statistics_rows(graph.statistics()), data_json=Markup(_safe_json(data)),
    )
