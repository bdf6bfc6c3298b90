"""Command-line options built from their one declaration (tatum.options), and the checks every verb
makes of its own numbers and file names before any work."""

from __future__ import annotations

import functools
import inspect
import math
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, get_args, get_type_hints

import typer

from tatum import options
from tatum.errors import TatumError

ADVANCED = "Advanced"


def opt(default: Any, help: str, *names: str, metavar: str = "", advanced: bool = False, show: bool = True):
    """An option whose help fits one line at 80 columns: the default shown as "(x)" after the text
    rather than typer's "[default: x]" on a line of its own; rarely used ones under "Advanced"."""
    shown = default not in (None, False, [], ...) and show
    return typer.Option(default, *names, help=help + (f" ({default:g})" if shown and isinstance(default, float)
                                                       else f" ({default})" if shown else ""),
                        metavar=metavar, show_default=False, rich_help_panel=ADVANCED if advanced else None)


def _type(spec: options.Spec):
    """What the option parser reads: text for mixtures and buckets (their checks parse it), else the
    field's own type."""
    if spec.text:
        return Optional[str]
    hint = {**get_type_hints(options.Conditioning), **get_type_hints(options.Sampling)}[spec.name]
    args = [a for a in get_args(hint) if a is not type(None)]
    return Optional[args[0]] if args else hint


def _annotation(spec: options.Spec, verb: str | None):
    typ = _type(spec)
    shown = _cli_default(spec, verb)
    if shown is None and spec.name in ("density", "polyphony"):
        shown = "any"
    help_ = spec.help + (f" ({shown:g})" if isinstance(shown, float) else f" ({shown})" if shown is not None else "")
    return Annotated[typ, typer.Option(spec.flag, help=help_, metavar=spec.metavar, show_default=False,
                                       rich_help_panel=ADVANCED if spec.advanced else None)]


def _cli_default(spec: options.Spec, verb: str | None):
    value = options.default(spec.name, verb)
    if spec.text and isinstance(value, dict):     # a mixture is given as text on the command line
        return ",".join(k if w == 1 and len(value) == 1 else f"{k}:{w:g}" for k, w in value.items())
    return value


def generation_options(verb: str | None = None) -> Callable:
    """Give a command every Conditioning and Sampling option, declared once in tatum.options (with the
    verb's own defaults), in place of its `conditioning` and `sampling` parameters, and hand it those
    two objects instead of the loose values.

    Values are checked here, before the command reads a file or loads a model; the messages name the
    command-line flag."""
    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        groups = {"conditioning": options.specs(options.Conditioning), "sampling": options.specs(options.Sampling)}
        params = []
        for p in sig.parameters.values():   # each object's options stand where the command names it
            if p.name in groups:
                params += [inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=_cli_default(s, verb),
                                             annotation=_annotation(s, verb)) for s in groups[p.name]]
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(fn)
        def command(**kw: Any):
            made = {}
            for name, cls in (("conditioning", options.Conditioning), ("sampling", options.Sampling)):
                specs = groups[name]
                made[name] = cls(**{s.name: s.checked(kw.pop(s.name), s.flag) for s in specs})
            return fn(**kw, **made)

        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command
    return wrap


def vocabulary_help() -> str:
    """The styles and pianists of the shipped models, for a verb's help."""
    genres, artists = options.vocabulary()
    return f"Styles: {', '.join(genres)}. Pianists: {', '.join(artists)}, other."


# ------------------------------------------------------------------ checks of a verb's own values
def check_number(flag: str, value: float | None, lo: float | None = None, hi: float | None = None, *,
                 above: float | None = None) -> None:
    """Refuse a value outside [lo, hi] (or not above `above`), NaN and infinity; None passes."""
    if value is None:
        return
    bad = not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi) \
        or (above is not None and value <= above)
    if bad:
        if above is not None:
            want = f"more than {above:g}" + (f" and at most {hi:g}" if hi is not None else "")
        elif hi is None:
            want = f"{lo:g} or more"
        else:
            want = f"{lo:g}–{hi:g}"
        raise TatumError(f"{flag} must be {want}, not {value:g}")


MIDI = (".mid", ".midi", ".smf", ".kar")


def check_suffix(path: Path | None, flag: str, suffixes: tuple[str, ...], what: str, hint: str = "") -> None:
    """An output whose name says it is something else than what is written there is refused (MIDI in
    out.wav would confuse every program that opens it)."""
    if path is None or Path(path).suffix.lower() in suffixes:
        return
    raise TatumError(f"{flag} writes {what}, so its name must end in {' or '.join(suffixes)}" + hint, path)
