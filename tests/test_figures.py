"""The report's figures as a reader sees them: every label inside the figure, every arrow of
the cohort flow ending on its box, axis labels at the configured confidence level."""

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.text import Text

from sinet_bm import figures
from sinet_bm.cohort import cohort_estimates, cohort_flow
from sinet_bm.contract import Definitions
from sinet_bm.endpoints import derive_endpoints
from sinet_bm.results import estimates_frame
from sinet_bm.sensitivity import SensitivitySettings, sensitivity_estimates
from sinet_bm.simulate import SyntheticDesign, scaled, simulate_cohort
from sinet_bm.survival import model_record, survival_results


@pytest.fixture(scope="module")
def study(config):
    tables = simulate_cohort(scaled(SyntheticDesign(), 300), seed=12)
    endpoints = derive_endpoints(tables, Definitions.from_config(config["definitions"]))
    settings = SensitivitySettings((6, 12, 24), 120.0, (12, 24, 60), 30.4375)
    survival = survival_results(endpoints, 0.9)
    rows = cohort_estimates(endpoints, 0.9) + survival.rows
    rows += sensitivity_estimates(endpoints, settings, 0.9)
    model = model_record(survival.adjusted)
    return endpoints, estimates_frame(rows), cohort_flow(endpoints), model


@pytest.fixture(scope="module")
def drawn(study) -> dict:
    figures.figure_style()
    endpoints, estimates, flow, model = study
    makers = figures.figure_makers(endpoints, estimates, flow, model, 0.9, 30.4375)
    assert set(makers) == set(figures.FIGURES)
    out = {}
    for name, make in makers.items():
        fig, _ = make()
        fig.canvas.draw()
        out[name] = fig
    return out


def outside(fig) -> list[str]:
    """What of a drawn figure reaches beyond its edges (half a point of slack): the tight box
    of everything drawn, and the texts that stick out of the figure."""
    renderer = fig.canvas.get_renderer()
    frame, drawn = fig.bbox, fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    inside = (
        drawn.x0 >= frame.x0 - 0.5
        and drawn.y0 >= frame.y0 - 0.5
        and drawn.x1 <= frame.x1 + 0.5
        and drawn.y1 <= frame.y1 + 0.5
    )
    if inside:
        return []
    return [
        text.get_text()
        for text in fig.findobj(Text)
        if text.get_text().strip()
        and not frame.contains(*text.get_window_extent(renderer).max)
        and text.get_window_extent(renderer).overlaps(drawn)
    ] or [f"drawn {drawn.bounds} beyond {frame.bounds}"]


@pytest.mark.parametrize("name", list(figures.FIGURES))
def test_every_text_lies_inside_its_figure(drawn, name):
    """A label wider than the figure is cut off in the SVG, the HTML and the PDF."""
    assert outside(drawn[name]) == []


def test_the_cohort_flow_arrows_end_on_their_boxes(drawn):
    """Each arrow's head is placed on a box's own outline (its position a fraction of the
    box, computed when the figure is drawn), not at typed coordinates that miss it."""
    ax = drawn["cohort_flow"].axes[0]
    boxes = [text.get_bbox_patch() for text in ax.texts if text.get_bbox_patch()]
    arrows = [text for text in ax.texts if isinstance(text, matplotlib.text.Annotation)]
    assert len(arrows) == 5
    for arrow in arrows:
        assert any(arrow.xycoords is box for box in boxes), arrow.xy
        x, y = arrow.xy
        assert x in (0.0, 0.5, 1.0) and y in (0.0, 0.5, 1.0)  # a point of the outline


def test_axis_labels_name_the_configured_level(drawn):
    labels = [
        ax.get_xlabel() for name in ("sre", "cox_forest", "bm_types") for ax in drawn[name].axes
    ]
    assert all("90% CI" in label for label in labels if label), labels
    assert not any("95%" in label for label in labels)
