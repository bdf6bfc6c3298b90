"""Every mistake on the command line is one line, `tatum: error: …`, and exit code 2 — the option
parser's own too (an unknown option or verb, a missing -o, a word where a number goes), with the
likeliest meant name where there is one."""

from __future__ import annotations

import difflib

import typer
import typer.core

from tatum.errors import TatumError

try:                                  # typer ≥ 0.2x carries its own click
    from typer import _click as click
except ImportError:                   # pragma: no cover
    import click


class Group(typer.core.TyperGroup):
    """A verb group that answers a misspelt verb with the verb meant."""

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            verbs = self.list_commands(ctx)
            guess = difflib.get_close_matches(name, verbs, n=1, cutoff=0.5)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            raise TatumError(f"{ctx.command_path} has no verb {name!r}{hint} (verbs: {', '.join(verbs)})")
        return super().resolve_command(ctx, args)


def _where(e) -> str:
    ctx = getattr(e, "ctx", None)
    return ctx.command_path if ctx is not None else "tatum"


def _param_name(param) -> str:
    if param is None:
        return "a value"
    if getattr(param, "param_type_name", "") == "argument":
        return param.metavar or param.name.upper()
    return "/".join(sorted(param.opts, key=len))


def one_line(e: Exception) -> str:
    """The parser's complaint as one line, naming the command and what to do."""
    where = _where(e)
    if isinstance(e, click.exceptions.NoSuchOption):
        ctx = getattr(e, "ctx", None)
        names = [o for p in (ctx.command.params if ctx else []) for o in p.opts + p.secondary_opts if o.startswith("--")]
        guess = difflib.get_close_matches(e.option_name.replace("_", "-"), names, n=1, cutoff=0.7)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        return f"{where} has no option {e.option_name}{hint} ({where} --help lists them)"
    if isinstance(e, click.exceptions.MissingParameter):
        return f"{where} needs {_param_name(e.param)} ({where} --help)"
    if isinstance(e, click.exceptions.BadParameter):
        message = e.message.rstrip(".")
        for words, say in (("valid integer", "takes a whole number"), ("valid number", "takes a number"),
                           ("valid float", "takes a number")):
            if words in message:
                return f"{_param_name(e.param)} {say} ({where} --help)"
        return f"{_param_name(e.param)}: {message}"
    if isinstance(e, click.exceptions.BadOptionUsage) and "requires an argument" in e.message:
        return f"{e.option_name} needs a value ({where} --help)"
    message = " ".join(e.format_message().split()).rstrip(".")
    return f"{where}: {message} ({where} --help)"


def no_verb_help(e) -> str:
    """What to say after the help when `tatum` (or `tatum data`) is run bare."""
    return f"give {_where(e)} a verb (listed above)"
