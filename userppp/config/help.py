"""``--help``: usage built from the option tables, grouped by module.

Only names, metavars, help lines and non-secret defaults are shown; a secret
option's default is never printed.  An option accepted for pppd
compatibility only (``Option.compat``) says so on its line.

The pieces of an option's entry (:func:`option_label`, :func:`option_summary`,
:func:`option_default`, :func:`group_title`) are shared with the man page and
the markdown option reference (:mod:`userppp.config.manpage`), so all three
say the same thing.
"""

from __future__ import annotations

from typing import Optional

from userppp.config.options import COMPAT_NOTE, Option

PROGRAM = "userppp"
WIDTH = 30

USAGE = f"usage: {PROGRAM} [device] [speed] [local:remote] [options]"
FILES_LINE = "Options files: /etc/ppp/options, ~/.ppprc, file FILE, call NAME."
LONG_FORMS_LINE = ("On the command line each option is also --NAME VALUE, --NAME=VALUE"
                   " (a flag: --NAME).")


def is_positional(option: Option) -> bool:
    return option.name.startswith("<")


def option_names(option: Option) -> tuple:
    """The option's name and its aliases."""
    return (option.name,) + tuple(option.aliases)


def option_metavar(option: Option) -> str:
    """What stands for the argument ("" for a flag or a positional value)."""
    if is_positional(option) or not option.takes_argument:
        return ""
    return option.metavar or "VALUE"


def option_label(option: Option) -> str:
    if is_positional(option):
        return option.name
    names = " | ".join(option_names(option))
    metavar = option_metavar(option)
    return f"{names} {metavar}" if metavar else names


def option_default(option: Option) -> Optional[str]:
    """The default as shown, or None when there is none worth showing.
    Never the default of a secret option."""
    if option.secret or option.append or not option.takes_argument:
        return None
    default = option.default
    if default is None or default is False or default == "" or \
            (isinstance(default, (tuple, list, set, frozenset, dict)) and not default):
        return None
    return str(default)


def option_summary(option: Option) -> str:
    """The help line, with the compat note when the option has no effect."""
    summary = option.help or ""
    if option.compat:
        summary = f"{summary} {COMPAT_NOTE}".strip()
    return summary


def group_title(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def format_help(groups) -> str:
    """``groups``: ((module name, options), ...) as the parser normalizes them."""
    lines = [USAGE, FILES_LINE, LONG_FORMS_LINE, ""]
    for name, options in groups:
        if not options:
            continue
        lines.append(f"{group_title(name)}:")
        for option in options:
            label = option_label(option)
            summary = option.help or ""
            default = option_default(option)
            if default is not None:
                summary += f" [default: {default}]"
            if option.compat:
                summary = f"{summary} {COMPAT_NOTE}".strip()
            if len(label) > WIDTH - 3:
                lines.append(f"  {label}")
                lines.append(f"  {'':<{WIDTH - 2}}{summary}".rstrip())
            else:
                lines.append(f"  {label:<{WIDTH - 2}}{summary}".rstrip())
        lines.append("")
    return "\n".join(lines)
