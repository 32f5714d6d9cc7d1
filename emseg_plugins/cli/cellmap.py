"""emseg cellmap: the CellMap Segmentation Challenge workflow: predict test crops, package a submission, score it.

Actions:
  predict   predict every test crop of the manifest whose dataset is under DATASET.CELLMAP.DATA_ROOT
  submit    package predictions into submission.zarr (zarr v2: crop<id>/<label>), validate it, zip it
            (with --validate: only check an existing submission.zarr / .zip against the manifest)
  evaluate  score a submission against a ground-truth zarr with the challenge's metric (JSON + table)

Examples:
  emseg cellmap predict --config-file configs/cellmap_cos7.yaml \\
      --checkpoint outputs/cellmap_cos7/checkpoints/last.ckpt --output outputs/cellmap_cos7/processed
  emseg cellmap submit --predictions outputs/cellmap_cos7/processed --output outputs/cellmap_cos7/submission.zarr
  emseg cellmap submit --validate outputs/cellmap_cos7/submission.zip
  emseg cellmap evaluate --submission outputs/cellmap_cos7/submission.zip --truth ground_truth.zarr --json scores.json

The test-crop manifest (official CSV format) comes from --manifest, else CELLMAP_CHALLENGE.MANIFEST of
--config-file, else the installed cellmap-segmentation-challenge package, else the copy shipped here.
The offline stand-in (`python -m emseg_plugins.challenge.standin DATA_ROOT`) writes its own held-out crops:
pass --manifest DATA_ROOT/test_crop_manifest.csv and --truth DATA_ROOT/test_ground_truth.zarr.
Predictions are written as OUT/<dataset>.zarr/crop<id>/<label> (the challenge's processed layout);
submit resamples them into each crop's voxel size, shape and translation. See docs/cellmap.md.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from emseg_plugins.cli.common import ArgumentParser, add_config_arguments, add_debug_argument, quiet_library_warnings
from emseg_plugins.errors import ConfigError

CONFIG_PURPOSE = "run config (predict: required; submit/evaluate: for CELLMAP_CHALLENGE keys)"


class ActionParser(ArgumentParser):
    """One action's parser: a flag that only another action takes is named as such (exit status 2)."""

    other_flags: frozenset[str] = frozenset()

    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            for word in message.split(":", 1)[1].split():
                if word.split("=")[0] in self.other_flags:
                    self.exit(2, f"error: {word.split('=')[0]} is not an option of `{self.prog}`; see --help\n")
        super().error(message)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=ActionParser,
                                    help="predict | submit | evaluate (see above)")
    predict = _action(actions, "predict", "predict every test crop of the manifest whose dataset is under DATASET.CELLMAP.DATA_ROOT")
    predict.add_argument("--checkpoint", metavar="CKPT", help="weights (a .ckpt written by pytc-train)")
    predict.add_argument("--crops", nargs="+", metavar="ID", help="only these test crop ids (default: CELLMAP_CHALLENGE.CROPS, else all)")
    predict.add_argument("--output", metavar="PATH", help="processed-predictions directory")
    predict.add_argument("--overwrite", action="store_true", help="redo finished crops")
    submit = _action(actions, "submit", "package predictions into submission.zarr, validate it, zip it")
    submit.add_argument("--predictions", metavar="DIR", help="what `emseg cellmap predict` wrote (<dataset>.zarr/crop<id>/<label>)")
    submit.add_argument("--output", metavar="PATH", help="submission.zarr to write")
    submit.add_argument("--overwrite", action="store_true", help="replace an existing submission")
    submit.add_argument("--strict", action="store_true", help="a manifest crop/label without a prediction is an error (default: a warning)")
    submit.add_argument("--no-zip", action="store_true", help="write submission.zarr only")
    submit.add_argument("--validate", metavar="ZARR|ZIP", help="only validate this submission against the manifest")
    evaluate = _action(actions, "evaluate", "score a submission against a ground-truth zarr with the challenge's metric")
    evaluate.add_argument("--submission", metavar="ZIP|ZARR", help="submission.zip or submission.zarr")
    evaluate.add_argument("--truth", metavar="ZARR", help="ground truth: crop<id>/<label> arrays (attrs voxel_size, translation)")
    evaluate.add_argument("--json", metavar="FILE", help="also write the scores as JSON here")
    flags = {name: {s for a in sub._actions for s in a.option_strings} for name, sub in actions.choices.items()}
    for name, sub in actions.choices.items():
        sub.other_flags = frozenset(set().union(*flags.values()) - flags[name])


def _action(actions, name: str, help_text: str) -> argparse.ArgumentParser:
    """The parser of one action, with the flags every action shares."""
    sub = actions.add_parser(name, help=help_text, description=f"emseg cellmap {name}: {help_text}.")
    add_config_arguments(sub, required=False, purpose=CONFIG_PURPOSE, overrides="config overrides, e.g. INFERENCE.THRESHOLD 0.4")
    sub.add_argument("--manifest", metavar="CSV|URL", help="test-crop manifest (default: CELLMAP_CHALLENGE.MANIFEST, else the packaged copy; the stand-in's: DATA_ROOT/test_crop_manifest.csv)")
    sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_debug_argument(sub)
    return sub


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if not getattr(args, name):
            raise ConfigError(f"`emseg cellmap {args.action}` needs --{name.replace('_', '-')}; see `emseg cellmap --help`")


def _config(args: argparse.Namespace):
    from emseg_plugins.config import load_config

    if args.opts and not args.config_file:
        raise ConfigError(f"overrides {args.opts[:2]} need --config-file")
    if not args.config_file:
        return None
    return load_config(args.config_file, args.config_base, args.opts)


def _manifest(args: argparse.Namespace, cfg):
    from emseg_plugins.challenge.manifest import load_manifest

    return load_manifest(args.manifest or (cfg.CELLMAP_CHALLENGE.MANIFEST if cfg is not None else ""))


def _instance_classes(cfg) -> list[str]:
    from emseg_plugins.challenge.config import INSTANCE_CLASSES

    return list(cfg.CELLMAP_CHALLENGE.INSTANCE_CLASSES) if cfg is not None else list(INSTANCE_CLASSES)


def run(args: argparse.Namespace) -> int:
    quiet_library_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            return {"predict": _predict, "submit": _submit, "evaluate": _evaluate}[args.action](args)
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning) and w.filename.find("emseg_plugins") >= 0:
                    print(f"warning: {w.message}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    _require(args, "config_file", "checkpoint", "output")
    from emseg_plugins.challenge.manifest import select
    from emseg_plugins.challenge.predict import describe, predict_test_crops

    cfg = _config(args)
    crops = _manifest(args, cfg)
    if args.crops:
        crops = select(crops, args.crops)
    report = predict_test_crops(cfg, args.checkpoint, args.output, crops, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"{describe(report)}\npredictions: {args.output}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from emseg_plugins.challenge.submit import (
        package_submission,
        validate_submission,
        zip_submission,
    )

    cfg = _config(args)
    crops = _manifest(args, cfg)
    instance = _instance_classes(cfg)
    if args.validate:
        if args.predictions or args.output:
            raise ConfigError("--validate checks an existing submission; leave out --predictions and --output")
        _validate_existing(Path(args.validate), crops, instance, args.strict)
        return 0
    _require(args, "predictions", "output")
    output = Path(args.output)
    if output.suffix != ".zarr":
        raise ConfigError(f"--output {args.output!r} must end in .zarr (the zip is written beside it as .zip)")
    if not Path(args.predictions).is_dir():
        raise ConfigError(f"--predictions {args.predictions!r}: directory not found; run `emseg cellmap predict` first")
    if args.strict:
        missing = [c for c in crops if not (Path(args.predictions) / f"{c.dataset}.zarr" / c.name / c.class_label).exists()]
        if missing:
            from emseg_plugins.challenge.submit import format_pairs
            from emseg_plugins.errors import DataError

            raise DataError(f"{args.predictions}: {len(missing)} manifest crop/labels have no prediction: "
                            f"{format_pairs([(c.id, c.class_label) for c in missing])} (--strict)")
    report = package_submission(args.predictions, crops, output, instance, overwrite=args.overwrite, progress=not args.no_progress)
    validate_submission(output, crops, instance)
    print(f"packaged {len(report.written)} crop/labels into {output} ({len(report.missing)} without a prediction)")
    if not args.no_zip:
        print(f"zipped: {zip_submission(output)}")
    return 0


def _validate_existing(path: Path, crops, instance, strict: bool) -> None:
    import tempfile

    from emseg_plugins.challenge.submit import (
        safe_extract,
        submission_root,
        validate_submission,
    )

    if not path.exists():
        raise ConfigError(f"--validate {str(path)!r}: not found")
    with tempfile.TemporaryDirectory(prefix="emseg-cellmap-validate-") as tmp:
        root = submission_root(safe_extract(path, tmp) if path.is_file() else path)
        missing = validate_submission(root, crops, instance, require_all=strict)
    print(f"{path}: valid ({len(crops) - len(missing)} of {len(crops)} manifest crop/labels present"
          f"{', the others will be scored as missing' if missing else ''})")


def _evaluate(args: argparse.Namespace) -> int:
    _require(args, "submission", "truth")
    from emseg_plugins.challenge.evaluate import (
        format_report,
        score_submission,
        write_scores,
    )

    cfg = _config(args)
    crops = _manifest(args, cfg)
    scores = score_submission(args.submission, args.truth, crops, _instance_classes(cfg), progress=not args.no_progress)
    print(format_report(scores))
    if args.json:
        print(f"scores: {write_scores(args.json, scores)}")
    return 0
