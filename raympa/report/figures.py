"""Plotly figures of the report, one function per figure, each taking an :class:`Analysis`.

Paper figures (Seshadri & Lerch, ISMIR 2021): R² box plots over seeds (Figures 2-3), t-SNE of test
latents (Figure 4), bin-centroid distances (Figure 5), Davies-Bouldin indices (Figure 6); then
what the paper lacked: DB index against R², sweep slices and parameter importance. A function
returns None when its table is empty.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from raympa.analysis import Analysis
from raympa.analysis.selection import label, protocol_name
from raympa.analysis.significance import ordered_models

BIN_COLOURS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#c8b100", "#f98e09", "#d1495b", "#7a0403")
MODEL_COLOURS = {"pcconvnet": "#636efa", "contrastive": "#ef553b", "contrastive-jl": "#00cc96"}
PANEL_PX = 300  # height of one row of subplots, pixels


def colour(model: str, i: int = 0) -> str:
    """A model's colour (a bin colour for models without their own)."""
    return MODEL_COLOURS.get(model, BIN_COLOURS[i % len(BIN_COLOURS)])


def group_keys(df: Any) -> list[tuple[str, str]]:
    """The (criterion, band) pairs of a table, in order of appearance."""
    return list(dict.fromkeys(zip(df["criterion"], df["band"])))


def _cells(df: Any, groups: list[tuple[str, str]], models: list[str]) -> Iterator[tuple[int, int, str, Any]]:
    """(row, column, model, rows of ``df``) of a grid with rows = criterion x band, columns = models."""
    for r, (crit, band) in enumerate(groups, 1):
        for c, m in enumerate(models, 1):
            yield r, c, m, df[(df["criterion"] == crit) & (df["band"] == band) & (df["model"] == m)]


def _model_grid(df: Any, *, hspace: float, with_seed: bool) -> tuple[Any, list[tuple[str, str]], list[str]]:
    """Empty subplots with rows = criterion x band and columns = models, titled by model and group."""
    from plotly.subplots import make_subplots

    groups, models = group_keys(df), ordered_models(df["model"])
    titles = [f"{label(m)} — {groups[r - 1][0]}, {groups[r - 1][1]}"
              + (f" (seed {s['seed'].iloc[0]})" if with_seed and len(s) else "")
              for r, _, m, s in _cells(df, groups, models)]
    fig = make_subplots(rows=len(groups), cols=len(models), subplot_titles=titles,
                        horizontal_spacing=hspace, vertical_spacing=0.3 / max(len(groups), 1))
    return fig, groups, models


# ----------------------------------------------------------------------------- figures
def fig_r2(a: Analysis) -> Any:
    """R² box plots over seeds: x = criterion, one box per model, rows = bands, columns = protocols."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = a.tables["r2_by_model"]
    if df.empty:
        return None
    bands = list(dict.fromkeys(df["band"]))
    protocols = list(dict.fromkeys(df["protocol"]))
    fig = make_subplots(rows=len(bands), cols=len(protocols), shared_yaxes=True,
                        subplot_titles=[f"{b} — {protocol_name(p)}" for b in bands for p in protocols])
    for r, band in enumerate(bands, 1):
        for c, prot in enumerate(protocols, 1):
            sub = df[(df["band"] == band) & (df["protocol"] == prot)]
            for i, model in enumerate(ordered_models(df["model"])):
                s = sub[sub["model"] == model]
                fig.add_trace(go.Box(
                    x=s["criterion"], y=s["r2"], name=label(model), legendgroup=model,
                    showlegend=(r == 1 and c == 1), boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=colour(model, i), text=[f"seed {v}" for v in s["seed"]],
                    hovertemplate="%{x}<br>R² %{y:.3f}<br>%{text}<extra>" + label(model) + "</extra>",
                ), row=r, col=c)
    fig.update_layout(boxmode="group", height=PANEL_PX * len(bands) + 80, yaxis_title="test R²",
                      margin=dict(t=60, b=40))
    return fig


def _grid_figure(df: Any, draw: Callable[[Any, int, int, Any], None], *, hspace: float, with_seed: bool) -> Any:
    """A model grid (rows = criterion x band, columns = models) with ``draw(fig, row, col, rows)``
    called for every cell; None when ``df`` is empty."""
    if df.empty:
        return None
    fig, groups, models = _model_grid(df, hspace=hspace, with_seed=with_seed)
    for r, c, _, s in _cells(df, groups, models):
        draw(fig, r, c, s)
    fig.update_annotations(font_size=11)  # subplot titles
    fig.update_layout(height=PANEL_PX * len(groups) + 80, margin=dict(t=60, b=20))
    return fig


def fig_tsne(a: Analysis) -> Any:
    """t-SNE scatter per representative trial: rows = criterion x band, columns = models."""
    import plotly.graph_objects as go

    shown: set[int] = set()

    def draw(fig: Any, r: int, c: int, s: Any) -> None:
        for b in sorted(s["bin"].unique()):
            sb = s[s["bin"] == b]
            fig.add_trace(go.Scatter(
                x=sb["tsne_x"], y=sb["tsne_y"], mode="markers", name=f"bin {b}", legendgroup=f"bin{b}",
                showlegend=int(b) not in shown, marker=dict(color=BIN_COLOURS[int(b) % len(BIN_COLOURS)], size=6),
                text=[f"{rid}: rating {y:.2f}" for rid, y in zip(sb["recording_id"], sb["rating"])],
                hovertemplate="%{text}<extra>bin " + str(b) + "</extra>",
            ), row=r, col=c)
            shown.add(int(b))

    fig = _grid_figure(a.tables["tsne"], draw, hspace=0.04, with_seed=True)
    if fig is not None:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        fig.update_layout(legend_title_text="rating bin")
    return fig


def fig_centroids(a: Analysis) -> Any:
    """Heatmaps of mean bin-centroid distances: rows = criterion x band, columns = models."""
    import plotly.graph_objects as go

    def draw(fig: Any, r: int, c: int, s: Any) -> None:
        if s.empty:
            return
        mat = s.pivot_table(index="bin_i", columns="bin_j", values="distance", aggfunc="mean", dropna=False)
        fig.add_trace(go.Heatmap(
            z=mat.to_numpy(), x=[f"bin {j}" for j in mat.columns], y=[f"bin {i}" for i in mat.index],
            colorscale="Viridis", showscale=False, texttemplate="%{z:.2f}",
            hovertemplate="%{y} – %{x}: %{z:.3f}<extra></extra>",
        ), row=r, col=c)

    fig = _grid_figure(a.tables["centroid_distances_mean"], draw, hspace=0.06, with_seed=False)
    if fig is not None:
        fig.update_yaxes(autorange="reversed")
    return fig


def fig_davies_bouldin(a: Analysis) -> Any:
    """DB index per model over seeds (selected configurations), x = criterion / band."""
    import plotly.graph_objects as go

    db = a.tables["davies_bouldin"]
    sel = db.merge(a.tables["r2_by_model"][["trial_id"]].drop_duplicates(), on="trial_id", how="inner")
    sel = sel.dropna(subset=["davies_bouldin"])
    if sel.empty:
        return None
    fig = go.Figure()
    for i, m in enumerate(ordered_models(sel["model"])):
        s = sel[sel["model"] == m]
        fig.add_trace(go.Box(x=s["criterion"] + " / " + s["band"], y=s["davies_bouldin"], name=label(m),
                             boxpoints="all", jitter=0.3, pointpos=0, marker_color=colour(m, i)))
    fig.update_layout(boxmode="group", height=420, yaxis_title="Davies-Bouldin index (lower = tighter bins)",
                      margin=dict(t=30, b=40))
    return fig


def fig_db_vs_r2(a: Analysis) -> Any:
    """Scatter of DB index against test R² for every trial with latents, one panel per group."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    db = a.tables["davies_bouldin"].dropna(subset=["davies_bouldin", "test_r2_full"])
    if db.empty:
        return None
    groups = group_keys(db)
    corr = a.tables["db_vs_r2"].set_index(["criterion", "band"])
    titles = []
    for g in groups:
        rho = corr["spearman_rho"].get(g) if g in corr.index else None
        titles.append(f"{g[0]}, {g[1]}" + (f" (Spearman ρ = {rho:.2f})" if rho == rho and rho is not None else ""))
    cols = min(len(groups), 2)
    rows = -(-len(groups) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles)
    for k, (crit, band) in enumerate(groups):
        s = db[(db["criterion"] == crit) & (db["band"] == band)]
        for i, m in enumerate(ordered_models(db["model"])):
            sm = s[s["model"] == m]
            fig.add_trace(go.Scatter(
                x=sm["davies_bouldin"], y=sm["test_r2_full"], mode="markers", name=label(m), legendgroup=m,
                showlegend=k == 0, marker=dict(color=colour(m, i), size=7), text=sm["config_id"] + ", seed " + sm["seed"].astype(str),
                hovertemplate="DB %{x:.2f}, R² %{y:.3f}<br>%{text}<extra></extra>",
            ), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(title_text="Davies-Bouldin index")
    fig.update_yaxes(title_text="test R² (full)")
    fig.update_layout(height=PANEL_PX * rows + 80, margin=dict(t=60, b=40))
    return fig


SLICE_COLUMNS = 3  # slice panels per row: room for a readable title and x axis each


def _slice_layout(groups: list[tuple[str, str]], params: list[str]) -> tuple[Any, list[tuple[int, int]]]:
    """Subplots for slice plots: each group's parameters in rows of ``SLICE_COLUMNS`` panels, a short
    title per panel (the parameter, and the group when there are several); (row, col) per panel."""
    from plotly.subplots import make_subplots

    cols = min(SLICE_COLUMNS, len(params))
    per_group = -(-len(params) // cols)
    n_rows = len(groups) * per_group
    cells, titles = [], []
    for g, (crit, band) in enumerate(groups):
        for k, p in enumerate(params):
            cells.append((g * per_group + k // cols + 1, k % cols + 1))
            titles.append(f"<b>{p}</b>" + (f"  ({crit}, {band})" if len(groups) > 1 else ""))
    height = PANEL_PX * n_rows + 80
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=min(110 / height, 1 / max(n_rows - 1, 1) - 1e-3))
    fig.update_annotations(font_size=13)  # subplot titles
    fig.update_layout(height=height, margin=dict(t=50, b=40))
    return fig, cells


def fig_sweep(a: Analysis) -> Any:
    """Slice plots: selection metric against each swept parameter, for the trials that use it."""
    import plotly.graph_objects as go

    from raympa.analysis.load import condition_holds

    df = a.tables["sweep"]
    params = [p for p in a.study.swept if p != "model"]
    if df.empty or not params:
        return None
    groups = [g for g in group_keys(df)
              if any(df[(df["criterion"] == g[0]) & (df["band"] == g[1])][p].astype(str).nunique() > 1 for p in params)]
    if not groups:
        return None
    metric, log_params = a.study.metric, a.study.log_params
    when = {p: d.get("when") for p, d in a.study.searched.items()}
    fig, cells = _slice_layout(groups, params)
    cell = iter(cells)
    for crit, band in groups:
        s = df[(df["criterion"] == crit) & (df["band"] == band)]
        for p in params:
            r, c = next(cell)
            used = s[[condition_holds(when.get(p), row) for _, row in s.iterrows()]]
            for i, m in enumerate(ordered_models(used["model"])):
                sm = used[used["model"] == m]
                fig.add_trace(go.Scatter(
                    x=sm[p], y=sm[metric], mode="markers", name=label(m), legendgroup=m,
                    showlegend=(r == 1 and c == 1), marker=dict(color=colour(m, i), size=7, opacity=0.8),
                    text=sm["config_id"] + ", seed " + sm["seed"].astype(str),
                    hovertemplate=p + " %{x}<br>" + metric + " %{y:.3f}<br>%{text}<extra></extra>",
                ), row=r, col=c)
            log = p in log_params and (used[p] > 0).all()
            fig.update_xaxes(title_text=f"{p}{' (log)' if log else ''}: {len(used)} trials use it", row=r, col=c,
                             type="log" if log else None, title_font_size=11)
            if c == 1:
                fig.update_yaxes(title_text=metric, row=r, col=c)
    return fig


def fig_importance(a: Analysis) -> Any:
    """Horizontal bars of parameter importance, labelled by sub-space and parameter, one colour per
    criterion x band."""
    import plotly.graph_objects as go

    df = a.tables["param_importance"]
    if df.empty:
        return None
    fig = go.Figure()
    for crit, band in group_keys(df):
        s = df[(df["criterion"] == crit) & (df["band"] == band)]
        fig.add_trace(go.Bar(x=s["importance"], y=[s["subspace"].tolist(), s["param"].tolist()], orientation="h",
                             name=f"{crit}, {band}",
                             hovertemplate="%{y}: %{x:.3f}<extra>" + f"{crit}, {band}" + "</extra>"))
    fig.update_layout(barmode="group", height=min(1600, 160 + 24 * len(df)),
                      xaxis_title=f"fANOVA importance for {a.study.metric} (sums to 1 per sub-space)",
                      yaxis=dict(autorange="reversed"), margin=dict(t=30, b=40, l=20))
    return fig


