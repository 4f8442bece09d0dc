"""``--help``: usage built from the option tables, grouped by module.

Only names, metavars, help lines and non-secret defaults are shown; a secret
option's default is never printed.  An option accepted for pppd
compatibility only (``Option.compat``) says so on its line.
"""

from __future__ import annotations

from userppp.config.options import COMPAT_NOTE, Option

PROGRAM = "userppp"
WIDTH = 30


def _label(option: Option) -> str:
    if option.name.startswith("<"):
        return option.name
    names = " | ".join((option.name,) + tuple(option.aliases))
    if option.takes_argument:
        metavar = option.metavar or "VALUE"
        return f"{names} {metavar}"
    return names


def _default(option: Option) -> str:
    if option.secret or option.append or not option.takes_argument:
        return ""
    if option.default is None or option.default is False:
        return ""
    return f" [default: {option.default}]"


def _group_title(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def format_help(groups) -> str:
    """``groups``: ((module name, options), ...) as the parser normalizes them."""
    lines = [f"usage: {PROGRAM} [device] [speed] [local:remote] [options]",
             "Options files: /etc/ppp/options, ~/.ppprc, file FILE, call NAME.",
             "On the command line each option is also --NAME VALUE, --NAME=VALUE"
             " (a flag: --NAME).", ""]
    for name, options in groups:
        if not options:
            continue
        lines.append(f"{_group_title(name)}:")
        for option in options:
            label = _label(option)
            summary = (option.help or "") + _default(option)
            if option.compat:
                summary = f"{summary} {COMPAT_NOTE}".strip()
            if len(label) > WIDTH - 3:
                lines.append(f"  {label}")
                lines.append(f"  {'':<{WIDTH - 2}}{summary}".rstrip())
            else:
                lines.append(f"  {label:<{WIDTH - 2}}{summary}".rstrip())
        lines.append("")
    return "\n".join(lines)
