"""Several centres, end to end: the example consortium (four centres, three dialects) run as
one data trust would, one of its centres run alone, and a coordinator pooling the centres'
bundles. Real Snakemake runs, shared by the tests, which only read them."""

import base64
import json
import re
import shutil

import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_run, copy_workflow, shared_folder, snakemake
from consortium_r import r_comparison

from sinet_bm.report import estimate_catalogue
from sinet_bm.simulate import write_consortium

pytestmark = pytest.mark.slow  # real Snakemake runs

CONFIG = "resources/multicentre.yaml"
OUT = "results/multicentre"
ALONE = "uppsala"  # the smallest centre, in a dialect of its own
# Fewer replicates than the default (one bootstrap job per cohort): the runs compared here
# all use the same settings, and the replicates' own code is tested elsewhere.
QUICK = {"bootstrap": {"replicates": 40, "shards": 1}}


def consortium_config() -> dict:
    return yaml.safe_load((REPO / CONFIG).read_text())


def alone_config(centre: str) -> dict:
    """The centre's single-centre config: its folder and dialect at the top level."""
    settings = dict(consortium_config()["centres"][centre])
    return settings | {"centre": centre, "out_dir": f"results/{centre}"}


@pytest.fixture(scope="session")
def consortium(tmp_path_factory):
    """The example consortium's run, the smallest centre's own run and a coordinator's
    run over the consortium's bundles, in one workflow folder."""

    def build(root):
        workdir = copy_workflow(root / "repo")
        shutil.copy2(REPO / CONFIG, workdir / CONFIG)
        centres = {
            name: settings | {"raw_dir": str(workdir / settings["raw_dir"])}
            for name, settings in consortium_config()["centres"].items()
        }
        write_consortium(centres)
        (workdir / "quick.yaml").write_text(yaml.safe_dump(QUICK))
        result = snakemake(workdir, "--configfile", CONFIG, "quick.yaml")
        assert result.returncode == 0, result.stderr[-3000:]
        (workdir / "alone.yaml").write_text(yaml.safe_dump(alone_config(ALONE) | QUICK))
        result = snakemake(workdir, "--configfile", "alone.yaml")
        assert result.returncode == 0, result.stderr[-3000:]
        bundles = sorted((workdir / OUT / "centres").glob("*/share/bundle.json"))
        coordinator = json.dumps(
            {"out_dir": "results/coordinator", "bundles": list(map(str, bundles))}
        )
        (workdir / "coordinator.yaml").write_text(coordinator)
        result = snakemake(workdir, "--configfile", "coordinator.yaml")
        assert result.returncode == 0, result.stderr[-3000:]

    return shared_folder(tmp_path_factory, "consortium", build) / "repo"


def estimates(path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def test_each_centre_is_analysed_as_if_it_ran_alone(consortium):
    """Byte for byte: the centre's estimates.csv and its bundle from the consortium's run
    equal those of its own single-centre run."""
    centre = consortium / OUT / "centres" / ALONE
    alone = consortium / "results" / ALONE
    assert (centre / "estimates.csv").read_bytes() == (alone / "estimates.csv").read_bytes()
    assert (centre / "share" / "bundle.json").read_bytes() == (
        alone / "share" / "bundle.json"
    ).read_bytes()


def test_every_centre_has_its_findings_and_estimates(consortium):
    for centre in consortium_config()["centres"]:
        folder = consortium / OUT / "centres" / centre
        page = (folder / "validation" / "report.html").read_text()
        assert f"<h1>Validation of the exports of centre {centre}</h1>" in page
        rows = estimates(folder / "estimates.csv")
        assert set(rows["estimate"]) == {r["estimate"] for r in estimate_catalogue(base())}


def base() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_union_and_pooled_rows_are_every_documented_estimate(consortium):
    rows = estimates(consortium / OUT / "estimates.csv")
    assert rows["estimate"].is_unique
    expected = estimate_catalogue(base() | consortium_config() | QUICK)
    assert set(rows["estimate"]) == {r["estimate"] for r in expected}
    by_id = rows.set_index("estimate")
    counts = sum(
        estimates(consortium / OUT / "centres" / c / "estimates.csv")
        .set_index("estimate")
        .at["n_eligible", "value"]
        for c in consortium_config()["centres"]
    )
    assert by_id.at["n_eligible", "value"] == counts  # the union counts every centre's
    assert by_id.at["n_centres", "value"] == 4
    assert by_id.at["hr_os_bm_crude_tau2", "value"] > 0  # the centres differ, as simulated


def test_a_coordinator_pooling_the_bundles_gets_exactly_the_pooled_rows(consortium):
    rows = estimates(consortium / OUT / "estimates.csv")
    pooled = rows[rows["population"] == "pooled"].reset_index(drop=True)
    coordinator = estimates(consortium / "results" / "coordinator" / "estimates.csv")
    pd.testing.assert_frame_equal(coordinator, pooled)
    expected = estimate_catalogue(base() | {"bundles": ["x"]})
    assert set(coordinator["estimate"]) == {r["estimate"] for r in expected}
    report = (consortium / "results" / "coordinator" / "report" / "report.html").read_text()
    for centre in consortium_config()["centres"]:
        assert f"<td>{centre} (synthetic)</td>" in report


def test_the_pooled_and_stratified_rows_equal_r(consortium, tmp_path):
    """Every pooled row, and the Cox models stratified by centre, recomputed in R (coxph,
    metafor's rma, predict and escalc, survdiff, mantelhaen.test) on centres whose effects
    differ (tau2 > 0), to the contract's tolerances."""
    frame = r_comparison(consortium / OUT, tmp_path)
    assert set(frame["kind"]) >= {"cox", "fe", "re", "re_pi", "tau2", "i2", "q", "mh"}
    wrong = frame[frame["agrees"] == False]  # noqa: E712  (None: shown, not compared)
    assert wrong.empty, "\n" + wrong.to_string()


def test_no_bundle_holds_a_patient_id_or_a_patient_date(consortium):
    """Scans every shared byte: the bundles and their pages, against every id and date of
    the centres' validated exports; the definitions' own dates are the only ones."""
    definitions = {str(v) for v in base()["definitions"].values()}
    for centre in consortium_config()["centres"]:
        folder = consortium / OUT / "centres" / centre
        patients = pd.read_parquet(folder / "validated" / "patients.parquet")
        dates = set()
        for table in ("patients", "imaging", "therapies", "skeletal_events"):
            frame = pd.read_parquet(folder / "validated" / f"{table}.parquet")
            for column in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    dates |= set(frame[column].dropna().dt.strftime("%Y-%m-%d"))
        ids = set(patients["patient_id"].astype(str))
        for name in ("bundle.json", "bundle.html"):
            text = (folder / "share" / name).read_text()
            assert not ids & set(re.findall(r"[A-Za-z0-9_:-]+", text)), (centre, name)
            shown = set(re.findall(r"\d{4}-\d{2}-\d{2}", text))
            assert shown <= definitions and not shown & (dates - definitions), (centre, name)


def test_the_consortium_report_shows_every_centre_and_forest_plot(consortium):
    html = (consortium / OUT / "report" / "report.html").read_text()
    assert "<h2>Several centres</h2>" in html
    for centre in consortium_config()["centres"]:
        assert f"<td>{centre} (synthetic)</td>" in html
    figures = [
        base64.b64decode(data).decode()
        for data in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    ]
    assert sum("Fixed effect" in svg for svg in figures) >= 6  # a forest plot per quantity
    assert (consortium / OUT / "report" / "report.pdf").stat().st_size > 0


def test_a_refreshed_centre_reruns_only_its_jobs_and_the_pooled_ones(consortium, tmp_path):
    workdir = copy_run(consortium, tmp_path / "repo")
    export = workdir / consortium_config()["centres"]["essen"]["raw_dir"] / "therapies.csv"
    lines = export.read_text().splitlines()
    export.write_text("\n".join(lines[:-1]) + "\n")  # one therapy row fewer
    result = snakemake(workdir, "--dry-run", "--configfile", CONFIG, "quick.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    roots = set(re.findall(r"wildcards: root=(\S+?)(?:,|\n)", result.stdout))
    assert roots == {f"{workdir / OUT}", f"{workdir / OUT}/centres/essen"} or roots == {
        OUT,
        f"{OUT}/centres/essen",
    }


def test_an_error_in_one_centre_stops_the_run_naming_it(consortium, tmp_path):
    workdir = copy_run(consortium, tmp_path / "repo")
    patients = workdir / consortium_config()["centres"]["essen"]["raw_dir"] / "patients.csv"
    lines = patients.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("sex")] = "unknown"
    lines[3] = ",".join(cells)
    patients.write_text("\n".join(lines) + "\n")
    result = snakemake(workdir, "--configfile", CONFIG, "quick.yaml")
    assert result.returncode != 0
    assert "centre essen: validation: 1 error(s)" in result.stderr + result.stdout
    out = workdir / OUT
    assert not (out / "estimates.csv").exists()  # nothing stale is left
    assert not (out / "centres" / "essen" / "estimates.csv").exists()
    assert (out / "centres" / "essen" / "validation" / "issues.csv").is_file()
    shutil.rmtree(workdir)
