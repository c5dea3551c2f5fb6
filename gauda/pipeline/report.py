"""``report.html``: the demo's results as one self-contained page (figures embedded, no network, no
external file), readable offline in any browser.

The page carries a short script that checks itself once loaded: it counts the images that decoded and
records any script error in ``<body data-images-loaded=... data-images-total=... data-errors=...>``, which
a headless browser's dumped DOM shows (``tests/test_demo.py`` reads it).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gauda.augmentation.uncertainty_guided import CHOICES_FILE
from gauda.config import ConfigError, to_yaml
from gauda.experiment.experiment import EXPERIMENT_FILE
from gauda.experiment.report import plot_frame_curves
from gauda.experiment.runner import EVALUATION_FILE, RunSpec
from gauda.io import atomic_write_text
from gauda.pipeline.figures import plot_class_curves, read_class_curves
from gauda.pipeline.verdict import experiment_sentences, rare_classes, verdict

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; }
.note { color: #555; font-size: 0.92em; } .best { font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } .grid figure { margin: 0; flex: 1 1 360px; }
figcaption { font-size: 0.9em; color: #444; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""

# Registered before anything else on the page, so that an error anywhere after it is recorded.
_ERROR_SCRIPT = """<script>
window.gaudaErrors = [];
window.addEventListener("error", function (e) { window.gaudaErrors.push(String(e.message || e)); }, true);
</script>"""
_CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded));
  document.body.setAttribute("data-errors", JSON.stringify(window.gaudaErrors));
  document.body.setAttribute("data-checked", "yes");
});
</script>"""


def _number(value: Any, digits: int = 3, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path, caption: str = "") -> str:
    """A PNG embedded as a data URI (a missing file is said, not hidden)."""
    if not path.is_file():
        return f'<p class="note">missing figure: {html.escape(str(path))}</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption or path.stem)
    figure = f'<img src="data:image/png;base64,{data}" alt="{alt}">'
    return f"<figure>{figure}<figcaption>{alt}</figcaption></figure>" if caption else figure


def _data_section(data: Mapping[str, Any], out: Path) -> str:
    rows = [
        (html.escape(c["name"]), c["frames"], _number(c["frame_fraction"], percent=True), c["pixels"])
        for c in sorted(data["classes"], key=lambda c: -c["frame_fraction"])
    ]
    splits = ", ".join(f"{name} {count}" for name, count in data["splits"].items())
    return (
        f"<p>{data['num_frames']} frames in {data['num_videos']} videos of the "
        f"<b>{html.escape(data['dataset'])}</b> dataset at {html.escape(str(data['resolution']))} px; "
        f"split by video: {splits}.</p>"
        + _table(("class", "frames", "of all frames", "pixels"), rows)
        + _image(out / "data" / "samples.png", "training frames with their masks, rare classes first")
    )


def _autoencoder_section(autoencoders: Mapping[str, Any], out: Path) -> str:
    image, mask = autoencoders["image"], autoencoders["mask"]
    summary = _table(
        ("autoencoder", "quality on the validation split", "codebook usage"),
        [
            ("image (Eq. 3)", f"PSNR {_number(image.get('psnr'), 2)} dB, SSIM {_number(image.get('ssim'))}, "
             f"L1 {_number(image.get('l1'), 4)}", _number(image.get("codebook_usage"), 2)),
            ("mask (Eq. 4)", f"mean IoU {_number(mask.get('mean_iou'))}",
             _number(mask.get("codebook_usage"), 2)),
        ],
    )  # fmt: skip
    per_class = _table(
        ("class", "mask reconstruction IoU"),
        [(html.escape(name), _number(iou)) for name, iou in mask.get("per_class_iou", {}).items()],
    )
    figures = "".join(
        _image(out / f"autoencoder_{m}" / "reconstructions.png", f"{m}: inputs above their reconstructions")
        for m in ("image", "mask")
    )
    return summary + per_class + f'<div class="grid">{figures}</div>'


def _reconstruction_section(reconstruction: Mapping[str, Any] | None) -> str:
    """What the autoencoders keep (the demo's ``reconstruction`` stage, on the frames it names): the
    real-trained segmenter on image reconstructions against the originals (goal: a ratio of at least 0.9
    for every class it segments at 0.5 or better), and the mask reconstructions' IoU, with the frames
    that hold each class."""
    if not reconstruction:
        return '<p class="note">Not measured in this demo folder (made before the stage existed).</p>'
    image, mask = reconstruction["image"], reconstruction["mask"]
    per_class, frames = image.get("per_class", {}), image.get("class_frames", {})
    rows = [
        (html.escape(name), frames.get(name, "–"), _number(v["iou_original"]),
         _number(v["iou_reconstructed"]), _number(v["ratio"], 2),
         _number(mask.get("per_class_iou", {}).get(name)))
        for name, v in per_class.items()
    ]  # fmt: skip
    means = (
        f"label mean of the segmenter: {_number(image.get('label_mean_iou_original'))} on the originals, "
        f"{_number(image.get('label_mean_iou_reconstructed'))} on the reconstructions; mask reconstruction "
        f"mean IoU {_number(mask.get('mean_iou'))}; {image.get('num_frames')} frames of {_frames_of(image)}."
    )
    figure = Path(image["figure"]) if image.get("figure") else None
    return (
        "<p>The default segmenter (trained on real frames) on each frame and on its image "
        "reconstruction: what it can still see is what generated pairs can teach.</p>"
        + _table(
            (
                "class",
                "frames",
                "segmenter IoU, originals",
                "on reconstructions",
                "ratio",
                "mask reconstruction IoU",
            ),
            rows,
        )
        + f"<p>{means}</p>"
        + (
            _image(figure, "frames with the rarest classes: the segmenter on originals and reconstructions")
            if figure
            else ""
        )
    )


def _frames_of(evaluation: Mapping[str, Any]) -> str:
    data = evaluation.get("data", {})
    if evaluation.get("split") == "train" and data.get("dataset") == "synthetic":
        return (
            f"newly rendered videos (data.synthetic.seed {data.get('synthetic_seed')}) that no model has seen"
        )
    return f"the {evaluation.get('split')} split"


def _samples_section(samples: Mapping[str, Any], generator: Mapping[str, Any], out: Path) -> str:
    hits = generator.get("hit_rate", {})
    rows = [
        (
            html.escape(c["class"]),
            _number(c["training_frame_frequency"], percent=True),
            _number(c["generated_fraction"], percent=True),
            _number(hits.get(c["class"]), percent=True),
        )
        for c in samples["classes"]
    ]
    head = (
        f"<p>{samples['num_samples_per_class']} pairs conditioned on each class alone ({samples['sampler']}, "
        f"{samples['steps']} steps, guidance w = {samples['guidance']:g} in eps_null + w (eps_c - eps_null))."
        " "
        f"The hit rate is the share of generated masks that contain the class asked for; the last column "
        f"is the generator evaluation's, over {generator.get('num_samples', '?')} pairs at w = "
        f"{generator.get('guidance', '?')}.</p>"
    )
    table = _table(
        ("class", "frames in training data", "hit rate (grids below)", "hit rate (evaluation)"), rows
    )
    grids = "".join(
        _image(out / "samples" / c["grid"], f"asked for {c['class']}") for c in samples["classes"]
    )
    return head + table + f'<div class="grid">{grids}</div>'


def _segmentation_section(
    segmentation: Mapping[str, Mapping[str, Any]],
    out: Path,
    title: str,
    classes: Sequence[Mapping[str, Any]],
    experiment: Mapping[str, Any] | None = None,
) -> str:
    schemes = list(segmentation)
    class_names = list(next(iter(segmentation.values()))["per_class"])
    rows = []
    for row, key in [*((name, None) for name in class_names), ("label mean", "label_mean_iou"),
                     ("sample mean", "sample_mean_iou"), ("sample median", "sample_median_iou")]:  # fmt: skip
        values = [
            segmentation[s]["per_class"][row]["iou"] if key is None else segmentation[s][key] for s in schemes
        ]
        best = max((v for v in values if v is not None), default=None)
        best = best if best and values.count(best) < len(values) else None  # no bold for a tie (all 0)
        cells = [
            f'<span class="best">{_number(v)}</span>'
            if v is not None and v == best and len(schemes) > 1
            else _number(v)
            for v in values
        ]
        rows.append((f"<b>{row}</b>" if key else html.escape(row), *cells))
    training = [
        (
            s,
            _number(segmentation[s]["training"].get("wall_seconds"), 1),
            _started(segmentation[s]["training"], schemes[0]),
            _number(segmentation[s]["training"].get("synthetic_wait_seconds"), 2),
            segmentation[s]["training"].get("best_step"),
        )
        for s in schemes
    ]
    curves = _frame_curves(schemes, out, title)
    choices = out / "segmentation_gauda" / "gauda_choices.png"
    uncertainty = (
        "<h3>What GAUDA asked for</h3>"
        + _image(
            choices,
            "class-wise uncertainty UE_c at each validation (dots: classes generated; crosses: classes "
            "labelled but hardly predicted, the most uncertain) beside the validation error 1 - IoU_c",
        )
        + _requests_table(out / "segmentation_gauda" / CHOICES_FILE)
        if "gauda" in schemes
        else ""
    )
    rare = rare_classes(classes)
    cited = experiment_sentences(experiment, rare) if experiment is not None else []
    written = [*verdict(segmentation, rare, bool(cited)), *cited]
    sentences = "".join(f"<li>{html.escape(s)}</li>" for s in written)
    return (
        f"<h3>Verdict</h3><ul>{sentences}</ul>"
        "<p>Test IoU per class of the segmenter trained with each scheme (best of each row in bold).</p>"
        + _table(("class", *schemes), rows)
        + _table(
            (
                "scheme",
                "training seconds",
                "trained from",
                "waited for synthetic pairs (s)",
                "best validation step",
            ),
            training,
        )
        + _class_curves(schemes, class_names, rare, classes, out)
        + curves
        + uncertainty
    )


def _started(training: dict[str, Any], first: str) -> str:
    """Where a segmenter's training began: step 0, or the first scheme's state before its validation."""
    step = training.get("forked_at_step")
    return "step 0" if step is None else f"step {step} of {html.escape(first)}'s run (the same until then)"


def _class_curves(
    schemes: Sequence[str],
    class_names: Sequence[str],
    rare: Sequence[str],
    classes: Sequence[Mapping[str, Any]],
    out: Path,
) -> str:
    """Per-class test IoU at every validation of each scheme's run, the rare classes first."""
    frames = {c["name"]: c["frames"] for c in classes}
    order = sorted(class_names, key=lambda name: frames.get(name, 0))
    curves = {s: read_class_curves(out / f"segmentation_{s}" / "metrics.csv", class_names) for s in schemes}
    if not any(points for per_class in curves.values() for points in per_class.values()):
        return '<p class="note">No per-class test curves: these runs were trained without them.</p>'
    figure = plot_class_curves(curves, order, out / "report_figures" / "class_curves.png")
    caption = (
        f"test IoU of each class over training, rarest first ({', '.join(rare)} are the rare ones); the "
        "checkpoint kept is chosen on the validation split"
    )
    return _image(figure, caption)


def _requests_table(path: Path) -> str:
    """Each of GAUDA's requests: the classes asked for, the pairs made and the pairs its members used."""
    if not path.is_file():
        return ""
    record = json.loads(path.read_text())
    choices = record["choices"]
    used = [c.get("previous_pairs_used") for c in choices[1:]]
    dropped = [c.get("previous_pairs_without_class") for c in choices[1:]]
    last = record.get("last_request") or {}
    used.append(last.get("previous_pairs_used"))
    dropped.append(last.get("previous_pairs_without_class"))
    rows = [
        (choice["step"], html.escape(", ".join(choice["classes"]) or "nothing"), choice["num_pairs"],
         "–" if n is None else n, "–" if d is None else d)
        for choice, n, d in zip(choices, used, dropped, strict=True)
    ]  # fmt: skip
    total = sum(n for n in used if n)
    return (
        _table(
            (
                "validation step",
                "classes asked for",
                "pairs generated",
                "pairs used",
                "dropped (class absent)",
            ),
            rows,
        )
        + f"<p>{total} generated pairs used in all, each member walking every request's pairs.</p>"
    )


def _frame_curves(schemes: Sequence[str], out: Path, title: str) -> str:
    """Sorted per-frame test IoU of each scheme (the paper's Figures 6 and 7), drawn from the run folders."""
    runs, results = [], {}
    for scheme in schemes:
        path = out / f"segmentation_{scheme}" / EVALUATION_FILE
        if path.is_file():
            spec = RunSpec(scheme, False, 0)
            runs.append(spec)
            results[spec.name] = json.loads(path.read_text())
    if not runs:
        return ""
    figure = plot_frame_curves(runs, results, out / "report_figures" / "frame_iou_curves.png", title)
    return _image(figure, "per-frame test IoU, sorted (the paper's Figures 6 and 7)")


def _generator_section(generator: Mapping[str, Any], out: Path) -> str:
    main = _table(
        ("feature extractor", "FID", "KID", "Real-Only IoU", "Synthetic-Only IoU"),
        [(html.escape(generator["feature_extractor"]), _number(generator["fid"]),
          f"{_number(generator['kid_mean'], 4)} ± {_number(generator['kid_std'], 4)}",
          _number(generator["ro_iou"]), _number(generator["so_iou"]))],
    )  # fmt: skip
    sweep = _table(
        ("guidance w", "FID", "KID", "RO IoU", "hit rate (class mean)"),
        [(f"{e['guidance']:g}", _number(e["fid"]),
          f"{_number(e['kid_mean'], 4)} ± {_number(e['kid_std'], 4)}",
          _number(e["ro_iou"]), _number(e["mean_hit_rate"], percent=True)) for e in generator["sweep"]],
    )  # fmt: skip
    note = (
        f"<p>{generator['num_samples']} pairs per guidance scale ({generator['sampler']}, "
        f"{generator['steps']} steps) against {generator['num_real']} real {generator['real_split']} frames. "
        "FID and KID use the features named in the table: "
        f"<b>{html.escape(generator['feature_extractor'])}</b>.</p>"
    )
    return (
        note
        + main
        + sweep
        + _image(out / "generator" / "guidance_sweep.png", "metrics against guidance (Fig. 5)")
    )


def _toy_section(toy: Mapping[str, Any], out: Path) -> str:
    rows = []
    for comparison, schemes in (("sampling", toy["sampling"]), ("augmentation", toy["augmentation"])):
        for scheme, values in schemes.items():
            accuracy = f"{values['test_accuracy_mean']:.3f} ± {values['test_accuracy_std']:.3f}"
            minority = _number(values.get("minority_share"), 2)
            rows.append((comparison, scheme, accuracy, values["steps_to_95"], minority))
    figures = "".join(
        _image(out / "toy" / name, name.removesuffix(".png")) for name in toy.get("figures", [])
    )
    return (
        f"<p>{html.escape(toy['metric'])}, over seeds {toy['seeds']}.</p>"
        + _table(("comparison", "scheme", "test accuracy", "steps to 95 %", "minority share"), rows)
        + f'<div class="grid">{figures}</div>'
    )


def render_report(out: Path, results: Mapping[str, Any]) -> str:
    """The report's HTML for the demo folder ``out`` and its ``results.json`` content."""
    from gauda.config import from_dict
    from gauda.presets import GaudaConfig

    config = from_dict(GaudaConfig, results["config"])
    title = f"{config.segmentation.model} on {results['data']['dataset']}"
    timings = _table(
        ("stage", "seconds", ""),
        [(name, _number(seconds, 1), "reused" if name in results.get("reused", []) else "")
         for name, seconds in results["timings"].items()],
    )  # fmt: skip
    sections = [
        ("Data", _data_section(results["data"], out)),
        ("Autoencoders: reconstructions", _autoencoder_section(results["autoencoders"], out)),
        ("What the autoencoders keep", _reconstruction_section(results.get("reconstruction"))),
        ("Generated pairs per class", _samples_section(results["samples"], results["generator"], out)),
        (
            "Segmentation: default, Adaptive Sampling, GAUDA",
            _segmentation_section(
                results["segmentation"], out, title, results["data"]["classes"], cited_experiment(config)
            ),
        ),
        ("The generator's evaluation", _generator_section(results["generator"], out)),
        ("The 2D simulation", _toy_section(results["toy"], out)),
        ("Timings", timings + _timing_note(results)),
        ("Configuration", f"<pre>{html.escape(to_yaml(config))}</pre>"),
    ]
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>gauda demo report</title>'
        f"<style>{_STYLE}</style>{_ERROR_SCRIPT}</head><body>"
        f"<h1>gauda demo: {html.escape(title)}</h1>"
        '<p class="note">GAUDA (Frisch et al.): uncertainty-guided generative augmentation for surgical '
        "segmentation, every stage run on this machine by <code>gauda demo</code>. Every number here is in "
        "<code>results.json</code> beside this page.</p>"
        f"{body}{_CHECK_SCRIPT}</body></html>\n"
    )


def cited_experiment(config: Any) -> dict[str, Any] | None:
    """``demo.experiment``'s ``experiment.json`` (a folder or the file), or None when not set."""
    if config.demo.experiment is None:
        return None
    path = Path(config.demo.experiment)
    path = path / EXPERIMENT_FILE if path.is_dir() else path
    try:
        experiment = json.loads(path.read_text())
        experiment_sentences(experiment, [])  # what the report will write from it
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"demo.experiment {config.demo.experiment}: expected a gauda experiment folder or its "
            f"{EXPERIMENT_FILE} ({type(error).__name__}: {error})"
        ) from error
    return experiment


def write_report(out: Path, results: Mapping[str, Any]) -> Path:
    """Write ``report.html`` into ``out`` atomically; returns its path."""
    return atomic_write_text(out / REPORT_FILE, render_report(out, results))


def _timing_note(results: dict[str, Any]) -> str:
    note = f"total {_number(results['total_seconds'], 1)} s of stage work"
    if results.get("jobs", 1) > 1 and results.get("wall_seconds") is not None:
        note += (f", {_number(results['wall_seconds'], 1)} s of wall time with {results['jobs']} stages at "
                 "a time (a stage's seconds are its own, overlapping others)")  # fmt: skip
    return f"<p>{note}.</p>"
