"""The evaluation report in ``fastbce score`` (docs/report.md): its options, the table, the
``--fail-if`` gate and the ``--plot`` figure. The numbers themselves come from the accumulator."""

from __future__ import annotations

import argparse
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from .._errors import UsageError
from .output import aligned, missing_name

__all__ = ["add_arguments", "failures", "options", "parse_conditions", "plot", "print_table"]

EXIT_FAILED_CONDITION = 3

# The keys of the table: overall (one per line) and per group (one column each).
OVERALL_KEYS = (
    "rows",
    "sum",
    "mean",
    "weighted_mean",
    "ci95",
    "weight",
    "log_loss",
    "normalized_entropy",
    "calibration",
    "auc",
    "brier",
    "ece",
    "base_rate",
    "mean_prediction",
    "omitted",
    "ignored",
)
GROUP_KEYS = (
    "rows",
    "log_loss",
    "normalized_entropy",
    "calibration",
    "auc",
    "base_rate",
    "weighted_mean",
    "ci95",
)
# The keys of --loss-only (the plain loss pass, no report): overall and per group.
LOSS_ONLY_KEYS = ("rows", "sum", "mean", "weighted_mean")
# Keys a --fail-if condition may test: the numbers every scope has.
CONDITION_KEYS = (
    "rows",
    "sum",
    "mean",
    "weighted_mean",
    "weight",
    "log_loss",
    "base_rate",
    "mean_prediction",
    "calibration",
    "normalized_entropy",
    "brier",
    "loss_positive",
    "loss_negative",
    "std_error",
    "auc",
    "auc_bound",
    "ece",
    "omitted",
    "ignored",
)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rep = parser.add_argument_group("evaluation report (docs/report.md)")
    rep.add_argument(
        "--loss-only",
        action="store_true",
        help="report only rows, sum, mean and weighted_mean (overall and per group) from the "
        "plain loss pass, without the rest of the report: faster, and 24 bytes of sums a group. "
        "--top-losses, --ignore-label and --plot need the report, --fail-if only these keys",
    )
    rep.add_argument(
        "--top-losses", type=int, default=0, metavar="K", help="list the K rows of largest loss"
    )
    rep.add_argument(
        "--ignore-label",
        default=None,
        metavar="V",
        help="skip rows labelled V (a number; with --positive-label, a label as the column has it)",
    )
    rep.add_argument(
        "--logit-offset",
        type=float,
        default=0.0,
        metavar="B",
        help="add B to every logit first (with --from-logits), e.g. ln of a down-sampling rate",
    )
    rep.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="COND",
        help='exit with status 3 when COND (e.g. "normalized_entropy>0.95") holds overall or in '
        "any group; repeatable",
    )
    rep.add_argument(
        "--plot",
        metavar="PATH.png",
        help="draw the reliability diagram and the loss per group with its 95%% interval into "
        "a .png that is not an input (needs matplotlib)",
    )


# With --positive-label the labels become 0 and 1 (columns.Labels), and the rows whose label is
# --ignore-label (as the column holds it) get this label, the accumulator's ignore_label.
IGNORED_CLASS = 2


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The accumulator's report options from the command line, checked."""
    if not 0 <= args.top_losses < 2**62:
        raise UsageError(f"--top-losses must be >= 0 and < 2^62; got {args.top_losses}")
    ignore_label = None
    if args.ignore_label is not None and args.positive_label is not None:
        if args.ignore_label == args.positive_label:  # (every positive row would be skipped)
            raise UsageError(
                f"--ignore-label and --positive-label name the same label {args.ignore_label!r}"
            )
        ignore_label = float(IGNORED_CLASS)  # (the label the rows of V get: columns.Labels)
    elif args.ignore_label is not None:
        try:
            ignore_label = float(args.ignore_label)
        except ValueError:
            raise UsageError(
                f"--ignore-label must be a number (a label of a text column needs "
                f"--positive-label); got {args.ignore_label!r}"
            ) from None
        if math.isnan(ignore_label):
            raise UsageError("--ignore-label must be a number; got nan")
    if not math.isfinite(args.logit_offset):
        raise UsageError(f"--logit-offset must be finite; got {args.logit_offset!r}")
    if args.logit_offset != 0.0 and not args.from_logits:
        raise UsageError("--logit-offset needs --from-logits (it is added to logits)")
    if args.plot is not None:
        from ..io.writers import check_plot_name

        check_plot_name(args.plot)
    if args.loss_only:
        needs = [
            name
            for name, given in (
                ("--top-losses", args.top_losses),
                ("--ignore-label", args.ignore_label is not None),
                ("--plot", args.plot is not None),
            )
            if given
        ]
        if needs:
            raise UsageError(
                f"{', '.join(needs)} need{'s' if len(needs) == 1 else ''} the evaluation "
                "report: drop --loss-only"
            )
    return {
        "top_losses": args.top_losses,
        "ignore_label": ignore_label,
        "logit_offset": args.logit_offset,
    }


def parse_conditions(texts: list[str], loss_only: bool = False) -> list[tuple[str, str, float]]:
    """(key, operator, value) for each --fail-if, or a UsageError naming the bad one (with
    --loss-only, only its keys may be tested)."""
    out = []
    for text in texts:
        m = _CONDITION.match(text)
        if m is None:
            raise UsageError(
                f"--fail-if {text!r}: expected KEY OP VALUE with OP one of "
                "<, <=, >, >=, ==, != (e.g. 'normalized_entropy>0.95')"
            )
        key, op, value = m.groups()
        if key not in CONDITION_KEYS:
            raise UsageError(
                f"--fail-if {text!r}: unknown key {key!r}; one of {', '.join(CONDITION_KEYS)}"
            )
        if loss_only and key not in LOSS_ONLY_KEYS:
            raise UsageError(
                f"--fail-if {text!r}: {key!r} needs the evaluation report; with --loss-only "
                f"the keys are {', '.join(LOSS_ONLY_KEYS)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--fail-if {text!r}: {value!r} is not a number") from None
        if math.isnan(number):  # (it would hold never, or with != always)
            raise UsageError(f"--fail-if {text!r}: the value is NaN; give a number")
        out.append((key, op, number))
    return out


def failures(result: dict[str, Any], conditions: list[tuple[str, str, float]]) -> list[str]:
    """Where each condition holds: "KEY OP VALUE: overall (value)" or "... in group G (value)".
    A key that is NaN (nothing to divide by) satisfies no condition."""

    def names(groups: dict[Any, Any]) -> list[tuple[str, Any]]:  # (the table's names)
        missing = missing_name(groups.__contains__)
        return [(missing if k is None else str(k), v) for k, v in groups.items()]

    scopes = [("overall", result)]
    scopes += [(f"in group {k}", v) for k, v in names(result.get("groups", {}))]
    for name, groups in result.get("slices", {}).items():
        scopes += [(f"in group {name}={k}", v) for k, v in names(groups)]
    found = []
    for key, op, value in conditions:
        for where, scope in scopes:
            got = scope[key]
            if not (isinstance(got, float) and math.isnan(got)) and _OPERATORS[op](got, value):
                found.append(f"{key}{op}{value:g}: {where} ({_fmt(got)})")
    return found


# --------------------------------------------------------------------------- table


def _fmt(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):  # ci95
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return f"{value:.6g}"


def _cell(key: str, scope: dict[str, Any]) -> str:
    if key == "ci95":  # as +- half its width, which is what a reader compares
        half = 0.5 * (scope["ci95"][1] - scope["ci95"][0])
        return "nan" if math.isnan(half) else f"±{half:.2g}"
    return _fmt(scope[key])


def print_table(
    summary: dict[str, Any],
    stream: TextIO,
    tables: Sequence[tuple[str, Callable[[], Iterable[tuple[Any, dict[str, Any]]]], str]]
    | None = None,
    loss_only: bool = False,
) -> None:
    """The overall keys, one per line; then a table per slicing, a row per group: `tables`
    holds (title, items, the missing group's name) with items called twice (the widths first,
    then the lines, so a million groups print without all their lines in memory); without it,
    the groups or slices in `summary`. loss_only: the keys of --loss-only, overall and per group."""
    overall_keys = LOSS_ONLY_KEYS if loss_only else OVERALL_KEYS
    group_keys = LOSS_ONLY_KEYS if loss_only else GROUP_KEYS
    for key in overall_keys:
        stream.write(f"{key:<19} {_fmt(summary[key])}\n")
    for t in summary.get("top_losses", []):
        group = f"  group {t['group']}" if "group" in t else ""
        stream.write(
            f"top loss            row {t['row']}  y_true {t['y_true']:g}  "
            f"y_pred {t['y_pred']:g}  loss {t['loss']:.6g}{group}\n"
        )
    if tables is None:
        scopes = [("group", summary["groups"])] if summary.get("groups") else []
        scopes += list(summary.get("slices", {}).items())
        tables = [(name, g.items, missing_name(g.__contains__)) for name, g in scopes]
    for title, items, missing in tables:
        head = [title, *("±95%" if k == "ci95" else k for k in group_keys)]
        widths = [len(h) for h in head]
        for _ in range(2):
            if _:
                stream.write("\n" + aligned(head, widths).rstrip() + "\n")
            for key, scope in items():
                row = [missing if key is None else str(key)]
                row += [_cell(f, scope) for f in group_keys]
                if _:
                    stream.write(aligned(row, widths).rstrip() + "\n")
                else:
                    widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]


# --------------------------------------------------------------------------- plot


def plot(result: dict[str, Any], path: str, group_title: str = "group") -> None:
    """Reliability diagram (with each bin's weight) and the loss per group with its 95% CI."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'fastbce[plot]'") from None
    groups: dict[Any, Any] = result.get("groups") or next(
        iter(result.get("slices", {}).values()), {}
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    bins = result["reliability"]
    mids = [(b["lo"] + b["hi"]) / 2 for b in bins]
    left.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="perfect calibration")
    left.plot(
        [b["mean_prediction"] for b in bins], [b["base_rate"] for b in bins], "o-", label="fastbce"
    )
    left.set(xlabel="mean prediction", ylabel="base rate (fraction positive)", xlim=(0, 1))
    left.set_title(f"reliability (ECE {result['ece']:.3g})")
    left.legend(loc="upper left")
    weight = left.twinx()
    weight.bar(mids, [b["weight"] for b in bins], width=0.08, alpha=0.2, color="C1")
    weight.set_ylabel("weight per bin")
    missing = missing_name(groups.__contains__)
    names = [missing if k is None else str(k) for k in groups] or ["overall"]
    scopes = list(groups.values()) or [result]
    means = [s["weighted_mean"] for s in scopes]
    halves = [0.5 * (s["ci95"][1] - s["ci95"][0]) for s in scopes]
    right.errorbar(means, range(len(names)), xerr=halves, fmt="o", capsize=3)
    right.set_yticks(range(len(names)), names)
    right.axvline(result["weighted_mean"], color="0.6", linestyle=":", label="overall")
    right.set(xlabel="weighted mean loss (95% interval)", ylabel=group_title)
    right.set_title("loss per group")
    fig.tight_layout()
    from ..io.writers import whole_file

    try:
        with whole_file(path) as tmp:  # (a temporary file, renamed once the figure is whole)
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
