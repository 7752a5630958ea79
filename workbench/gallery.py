"""Galleries and the detail view of test images, shared by the Map, All errors and Compare pages.

    tiles, total = gallery(cfg, run_id, indices, page, with_overlay, "map")   # one page of clickable tiles
    body = detail(cfg, run_id, index)      # image, Grad-CAM for the predicted and the true class, bars

Only component builders live here (no callbacks: Dash registers a page's callbacks when it runs the
page file, so decorators in a helper module would reach the first app only). Each tile is an
html.Button with id {"type": f"{prefix}-thumb", "index": test index}; the page's own callback opens
`detail` for the clicked one.
"""

from __future__ import annotations

import numpy as np
from dash import dcc, html
import dash_bootstrap_components as dbc

from workbench import artifacts, figures
from workbench.explain import get_explainer
from workbench.images import overlay, png_data_url

PAGE_SIZE = 48   # tiles per page: one screenful (8 rows of 6), one Grad-CAM batch well under a second


def pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


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


def detail(cfg: dict, run_id: str, index: int):
    """A test image large, Grad-CAM for the predicted class beside the true class's, and the probabilities."""
    frame = artifacts.predictions(cfg["runs_dir"], run_id)
    row = frame[frame["index"] == index]
    if row.empty:
        raise artifacts.runs.RunError(f"run {run_id!r} has no prediction for test image #{index}", "no_image")
    row = row.iloc[0]
    names = artifacts.class_names(cfg["runs_dir"], run_id)
    true, pred = int(row["label"]), int(row["predicted"])
    image = artifacts.test_images(cfg["data_dir"])[index]
    heatmaps = get_explainer(cfg["runs_dir"], run_id).explain(np.stack([image, image]), [pred, true], "gradcam")

    def figure(src, caption):
        return html.Figure([html.Img(src=src, className="big-image"), html.Figcaption(caption)])

    images = [figure(png_data_url(image, scale=6), f"true: {names[true]}"),
              figure(png_data_url(overlay(image, heatmaps[0]), scale=6), f"Grad-CAM for {names[pred]} (predicted)")]
    if true != pred:
        images.append(figure(png_data_url(overlay(image, heatmaps[1]), scale=6), f"Grad-CAM for {names[true]} (true)"))
    bars = dcc.Graph(figure=figures.confidence_bars(artifacts.probabilities(row), names, target=true),
                     config=figures.STATIC_GRAPH_CONFIG)
    return dbc.Row([dbc.Col([html.Div(images, className="image-pair"),
                             dcc.Link("Explore in Predict →", href=f"/predict?test={index}")], md=7),
                    dbc.Col(bars, md=5)], className="insight-detail")
