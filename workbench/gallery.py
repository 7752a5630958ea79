"""Galleries and the detail view of test images, shared by the Errors, Map, All errors and Compare pages.

    tiles, total = gallery(cfg, run_id, indices, page, with_overlay, "map")   # one page of clickable tiles
    body = detail(cfg, run_id, index)      # image, Grad-CAM for the predicted and the true (or runner-up) class
    footer = detail_footer("table")        # ← previous · "k of n" · next → under a detail view
    index = step_in(order, index, +1)      # the next image of an ordered list, held at its ends
    step = clicked_step("table", prev_clicks, next_clicks, stepped)   # in a callback: +2 after a double click

Only component builders live here (no callbacks: Dash registers a page's callbacks when it runs the
page file, so decorators in a helper module would reach the first app only). Each tile is an
html.Button with id {"type": f"{prefix}-thumb", "index": test index}; the page's own callback opens
`detail` for the clicked one.
"""

from __future__ import annotations

import numpy as np
from dash import dcc, html, set_props
import dash_bootstrap_components as dbc

from workbench import artifacts, figures
from workbench.explain import get_explainer
from workbench.images import overlay, png_data_url
from workbench.urlstate import merge_query

PAGE_SIZE = 48   # tiles per page: one screenful (8 rows of 6), one Grad-CAM batch well under a second


def pages(total: int, size: int = PAGE_SIZE) -> int:
    """How many pages of `size` hold `total` items (at least one, an empty page)."""
    return max(1, -(-total // size))


def gallery(cfg: dict, run_id: str, indices, page: int, with_overlay: bool, prefix: str) -> tuple[list, int]:
    """Tiles of one page of `indices` (test indices, in the order given) and the total count;
    with_overlay: each image under its Grad-CAM for the predicted class."""
    indices = [int(i) for i in indices]
    page = min(max(1, int(page or 1)), pages(len(indices)))
    chunk = np.asarray(indices[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], dtype=np.int64)
    frame = artifacts.predictions(cfg["runs_dir"], run_id).set_index("index")
    rows = frame.loc[chunk]
    images = artifacts.test_images(cfg["data_dir"])[chunk]
    predicted = rows["predicted"].to_numpy(dtype=np.int64)
    if with_overlay and len(images):
        heatmaps = get_explainer(cfg["runs_dir"], run_id).explain(images, predicted, "gradcam")
        images = [overlay(im, hm) for im, hm in zip(images, heatmaps)]
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    labels = rows["label"].to_numpy(dtype=np.int64)
    probs = rows[artifacts.runs.PROB_COLUMNS].to_numpy()
    tiles = [tile(int(i), im, names[t], names[p], float(pr[p]), prefix)
             for i, im, t, p, pr in zip(chunk, images, labels, predicted, probs)]
    return tiles, len(indices)


def tile(index: int, image: np.ndarray, true: str, predicted: str, confidence: float, prefix: str):
    """One clickable tile: the image, "92% Shirt" (red when wrong), the true class under it."""
    ok = true == predicted
    caption = [html.Div(f"{confidence:.0%} {predicted}", className="prob-main" if ok else "prob-main text-danger"),
               html.Div(f"true {true}", className="prob-other")]
    return html.Button([html.Img(src=png_data_url(image, scale=3), className="thumb"), *caption],
                       id={"type": f"{prefix}-thumb", "index": index}, className="tile tile-button",
                       title=f"test image #{index}: predicted {predicted} ({confidence:.0%}), true {true}",
                       **{"data-index": str(index)})


def detail_footer(prefix: str) -> dbc.ModalFooter:
    """A detail view's footer: buttons PREFIX-prev and PREFIX-next around the position PREFIX-position."""
    def button(label, name):
        return dbc.Button(label, id=f"{prefix}-{name}", n_clicks=0, color="secondary", outline=True, size="sm")

    return dbc.ModalFooter([button("← previous", "prev"), html.Span(id=f"{prefix}-position",
                                                                    className="small text-muted"),
                            button("next →", "next"), dcc.Store(id=f"{prefix}-stepped", data=[0, 0])],
                           className="justify-content-between")


def clicked_step(prefix: str, prev_clicks, next_clicks, stepped) -> int:
    """Images to move by (+ forward) for the clicks on PREFIX-prev / PREFIX-next not yet taken, and
    records them as taken in PREFIX-stepped. A double click's second request leaves before the first
    one's answer is back, so it still sees the old image: counting clicks moves it two, not one."""
    now = [prev_clicks or 0, next_clicks or 0]
    seen = stepped if isinstance(stepped, list) and len(stepped) == 2 else [0, 0]
    set_props(f"{prefix}-stepped", {"data": now})
    return (now[1] - seen[1]) - (now[0] - seen[0])


def step_in(order: list[int], index: int, step: int) -> int | None:
    """The image `step` places from `index` in `order`, held at the ends; None when it is not there."""
    if index not in order:
        return None
    return order[min(max(order.index(index) + step, 0), len(order) - 1)]


def footer_state(order: list[int], index: int, where: str, outside: str | None = None) -> tuple[bool, bool, str | None]:
    """The footer's (previous disabled, next disabled, "k of n WHERE") for `index` in `order`; for an
    image that is not in it (a link's, a point clicked outside a selection), `outside` says so."""
    if index not in order:
        return True, True, outside
    position = order.index(index)
    return position == 0, position == len(order) - 1, f"{position + 1} of {len(order):,} {where}"


def detail(cfg: dict, run_id: str, index: int, prefix: str = "insight"):
    """A test image large, Grad-CAM for the predicted class beside the true class's (the runner-up's
    when the answer is right), the probabilities and a link to Predict; its id is PREFIX-detail-content."""
    frame = artifacts.predictions(cfg["runs_dir"], run_id)
    row = frame[frame["index"] == index]
    if row.empty:
        raise artifacts.runs.RunError(f"run {run_id!r} has no prediction for test image #{index}", "no_image")
    row = row.iloc[0]
    probs = artifacts.probabilities(row)
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    true, pred = int(row["label"]), int(row["predicted"])
    other = true if true != pred else int(np.argsort(probs)[-2])
    image = artifacts.test_images(cfg["data_dir"])[index]
    heatmaps = get_explainer(cfg["runs_dir"], run_id).explain(np.stack([image, image]), [pred, other], "gradcam")
    images = [big_figure(image, f"true: {names[true]}"),
              big_figure(overlay(image, heatmaps[0]), f"Grad-CAM for {names[pred]} (predicted)"),
              big_figure(overlay(image, heatmaps[1]),
                         f"Grad-CAM for {names[other]} ({'true' if true != pred else 'runner-up'})")]
    bars = dcc.Graph(figure=figures.confidence_bars(probs, names, target=true), config=figures.STATIC_GRAPH_CONFIG)
    explore = "/predict" + merge_query("", {"run": run_id, "test": index})  # the run too: the link stands alone
    return dbc.Row([dbc.Col([html.Div(images, className="image-pair"),
                             dcc.Link("Explore in Predict →", href=explore)], lg=7),
                    dbc.Col(bars, lg=5)], className="insight-detail", id=f"{prefix}-detail-content")


def big_figure(image: np.ndarray, caption: str):
    return html.Figure([html.Img(src=png_data_url(image, scale=6), className="big-image"),
                        html.Figcaption(caption, className="cam-caption")])
