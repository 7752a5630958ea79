"""Every app built in one process gets every callback: Dash executes page files afresh for each app,
but helper modules under pages/ (pages/predict_trust.py) are imported once, so their callbacks must be
registered per app (a second app once served a Predict page without its faithfulness curve)."""

from workbench.app import create_app


def callback_outputs(app) -> str:
    """The callback outputs the app's browser side is told about (its /_dash-dependencies)."""
    response = app.server.test_client().get("/_dash-dependencies")
    assert response.status_code == 200
    return " ".join(item["output"] for item in response.get_json())


def test_a_second_app_in_the_same_process_has_the_predict_trust_callbacks(runs_dir, data_dir):
    first = callback_outputs(create_app(runs_dir, data_dir=data_dir))
    second = callback_outputs(create_app(runs_dir, data_dir=data_dir))
    for output in ("predict-faith.figure", "predict-compare.children", "errors-gallery.children"):
        assert output in first and output in second
    assert first.count("predict-faith.figure") == second.count("predict-faith.figure") == 1
