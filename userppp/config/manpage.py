"""The man page ``userppp(8)`` and the markdown option reference, generated
from the option tables (:func:`userppp.config.tables.option_tables`).

    python3 -m userppp.config.manpage            # rewrite docs/userppp.8, docs/options.md
    python3 -m userppp.config.manpage --check    # exit 1 if they are out of date

One document model (:func:`document`) feeds both renderers; an option's
entry is made of the same pieces as its ``--help`` line
(:mod:`userppp.config.help`), so the three never disagree.  A secret
option's default is never printed.  The exit statuses come from
:class:`userppp.exitcodes.ExitCode`, the signals from the process's signal
policy (:data:`userppp.io.signals.HANDLED`).

Prose uses two inline marks: ```word``` (a literal: bold in roff, code in
markdown) and ``*word*`` (a placeholder: italic, emphasis).
"""

from __future__ import annotations

import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from userppp import __version__
from userppp.config.help import (
    FILES_LINE, LONG_FORMS_LINE, PROGRAM, group_title, is_positional, option_default,
    option_metavar, option_names, option_summary)
from userppp.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
MANPAGE = ROOT / "docs" / "userppp.8"
MARKDOWN = ROOT / "docs" / "options.md"
GENERATED_BY = "python3 -m userppp.config.manpage"

# -- what the page says beyond the tables ---------------------------------------------

NAME_LINE = "userppp - PPP over serial lines in user space, with pppd's options and log"

DESCRIPTION = [
    "`userppp` is a userspace implementation of the Point-to-Point Protocol "
    "(RFC 1661) for asynchronous serial lines, with no kernel PPP driver. It takes "
    "pppd's option names, options files, chat(8) scripts, pap-secrets and "
    "chap-secrets files, writes pppd's log lines and exits with pppd's exit "
    "statuses, so a pppd configuration works as written.",
    "Async HDLC framing (FCS-16/32, control character escaping) runs in a small C "
    "core; LCP, authentication (PAP, CHAP-MD5, MS-CHAP v1 and v2) and the network "
    "protocols are negotiated in Python on one event loop. IP packets reach the "
    "host through a TUN device.",
    "The command line is `userppp` [*device*] [*speed*] [*local*:*remote*] "
    "[*options*]: a device name, an all-digit speed and an address pair are "
    "recognised by their form, everything else is an option. Options are read "
    "from `/etc/ppp/options`, then `~/.ppprc`, then the command line; `file` "
    "*FILE* and `call` *NAME* read further files where they appear.",
    "As pppd, userppp detaches once the options are checked: the command exits "
    "0 and the daemon goes on in a new session, in `/`, with standard input, "
    "output and error on /dev/null. `nodetach` keeps it in the foreground, "
    "`updetach` until IPCP is up; with no *device* (standard input is the line) "
    "or a *device* that is standard input it never detaches. Every log line "
    "goes to syslog (facility daemon, ident `userppp`, with the pid; debug lines "
    "with `debug` only) and, in the foreground or with `logfile` or `logfd`, "
    "to standard error or that file.",
    "Unlike pppd, lines caused by what arrives from the line are rate-limited: "
    "one line per reason per 5 seconds (10 with `debug`; packet dumps 50 per "
    "protocol and code), then one \"(N similar messages suppressed)\" line per "
    "interval, so a broken or hostile peer cannot fill the log.",
]

OPTIONS_INTRO = [
    "Each option is written as in pppd's options files: the name, then its "
    "argument if it takes one. On the command line each is also a GNU long "
    "option: `--`*name* *value*, `--`*name*`=`*value*, or `--`*name* for an "
    "option without an argument. Further names of the same option follow its "
    "name. The options are grouped by the part of userppp that owns them, "
    "as in `userppp --help`.",
]

#: pppd's meaning of each exit status (pppd(8), EXIT STATUS), in our words
EXIT_STATUS = {
    ExitCode.OK: "the link was established and then terminated at the peer's "
                 "request, or userppp detached (the parent's status), or `--help`, "
                 "`--version` or `dryrun` printed what they print",
    ExitCode.FATAL_ERROR: "an immediately fatal error (out of memory, an "
                          "internal error, a system call that failed)",
    ExitCode.OPTION_ERROR: "an error in the options (the message names the "
                           "option, the file and the line)",
    ExitCode.NOT_ROOT: "not running with the privileges an option needs",
    ExitCode.NO_KERNEL_SUPPORT: "the kernel lacks what is needed (for userppp: "
                                "the TUN device)",
    ExitCode.USER_REQUEST: "terminated by SIGINT or SIGTERM",
    ExitCode.LOCK_FAILED: "the serial port could not be locked",
    ExitCode.OPEN_FAILED: "the serial port could not be opened",
    ExitCode.CONNECT_FAILED: "the connect script failed (non-zero exit status)",
    ExitCode.PTYCMD_FAILED: "the pty command could not be run",
    ExitCode.NEGOTIATION_FAILED: "the PPP negotiation failed (no agreement on "
                                 "at least one network protocol)",
    ExitCode.PEER_AUTH_FAILED: "the peer failed to authenticate itself",
    ExitCode.IDLE_TIMEOUT: "the link was idle for the `idle` time",
    ExitCode.CONNECT_TIME: "the link was up for the `maxconnect` time",
    ExitCode.CALLBACK: "callback was negotiated and an incoming call should "
                       "arrive shortly",
    ExitCode.PEER_DEAD: "the peer did not answer `lcp-echo-failure` echo "
                        "requests in a row",
    ExitCode.HANGUP: "the modem hung up",
    ExitCode.LOOPBACK: "the line is looped back (our own magic numbers came back)",
    ExitCode.INIT_FAILED: "the init script failed",
    ExitCode.AUTH_TOPEER_FAILED: "we failed to authenticate ourselves to the peer",
    ExitCode.TRAFFIC_LIMIT: "the traffic limit was reached",
    ExitCode.CNID_AUTH_FAILED: "the calling number was not authorised",
}

FILES = [
    ("/etc/ppp/options", "system-wide options, read first"),
    ("~/.ppprc", "the user's options, read next"),
    ("/etc/ppp/peers/*NAME*", "options read by `call` *NAME*"),
    ("/etc/ppp/pap-secrets", "names and secrets for PAP (`pap-secrets` moves it)"),
    ("/etc/ppp/chap-secrets", "names and secrets for CHAP and MS-CHAP "
                              "(`chap-secrets` moves it)"),
    ("/var/run/ppp-*NAME*.pid", "the process id while it runs, with `linkname` *NAME*"),
    ("/var/lock/LCK..*DEVICE*", "the UUCP lock of the serial device, with `lock`"),
]

ENVIRONMENT = [
    ("USERPPP_ETC", "a directory that stands in for `/etc/ppp` (options, "
                    "peers/, the secrets files)"),
    ("USERPPP_RUN_DIR", "where the pid file goes instead of `/var/run`"),
    ("USERPPP_LOCK_DIR", "where lock files go instead of `/var/lock`"),
    ("USERPPP_SYSLOG_SOCKET", "the syslog socket instead of `/dev/log` (for tests)"),
    ("USERPPP_PURE", "`1` selects the pure-Python twins of the C core (slow; "
                     "for debugging)"),
]

#: what each signal does; only those the signal policy handles are listed
SIGNALS = {
    signal.SIGINT: "terminate the link: log \"Terminating on signal 2.\", send an "
                   "LCP Terminate-Request \"User request\" and exit with status 5; a "
                   "running connect or init script gets the signal",
    signal.SIGTERM: "as SIGINT (\"Terminating on signal 15.\")",
    signal.SIGHUP: "hang up the line: log \"Hangup (SIGHUP)\" and close the link "
                   "(exit status 16); under `persist` the link is set up again "
                   "after `holdoff`",
    signal.SIGUSR1: "log one line of link status (phase, frames in and out, "
                    "bad frames, queued bytes)",
    getattr(signal, "SIGUSR2", None): "renegotiate compression: restart CCP",
}

SECURITY = [
    "The log never shows a secret: passwords, CHAP and MS-CHAP responses and "
    "keys are left out of every log line at every `debug` level, of error "
    "messages and of `dump` and `dryrun` output.",
    "A capture holds the frames exactly as they went over the wire, secrets "
    "inside authentication frames included: a PAP password is in a `pcap` or "
    "`record` file in clear text, and a CHAP or MS-CHAP exchange in it can be "
    "attacked offline. A capture is a debugging tool; userppp creates capture "
    "files with mode 0600. Keep them private and delete them after use.",
    "A `password` given on the command line can be read by every local user in "
    "`/proc/`*PID*`/cmdline` and `ps` output while userppp runs. Put secrets in "
    "`/etc/ppp/pap-secrets` or `/etc/ppp/chap-secrets` (mode 0600), or in an "
    "options file only root can read.",
]

SEE_ALSO = ["pppd(8)", "pppdump(8)", "chat(8)", "tshark(1)", "tcpdump(8)", "pcap-linktype(7)"]


# -- the document model ---------------------------------------------------------

@dataclass(frozen=True)
class OptionEntry:
    names: tuple             # the name and its aliases ("<device>" for a positional)
    metavar: str             # "" for a flag or a positional value
    summary: str             # the help line, with the compat note
    default: Optional[str]   # None: nothing to show (or a secret)
    positional: bool


@dataclass(frozen=True)
class Block:
    kind: str                # section | para | items | options
    title: str = ""
    text: str = ""
    items: tuple = ()        # (tag, text) pairs, or OptionEntry for "options"


def _entries(options) -> tuple:
    return tuple(OptionEntry(names=option_names(o), metavar=option_metavar(o),
                             summary=option_summary(o), default=option_default(o),
                             positional=is_positional(o))
                 for o in options)


def _signal_items() -> tuple:
    from userppp.io.signals import HANDLED
    items = []
    for signum in sorted(HANDLED):
        text = SIGNALS.get(signum)
        if text is None:
            raise KeyError(f"signal {signal.Signals(signum).name} is handled but "
                           "not described in SIGNALS")
        items.append((signal.Signals(signum).name, text))
    return tuple(items)


def document(groups) -> list:
    """The whole page as blocks; ``groups`` as option_tables() gives them."""
    blocks = [Block("section", "NAME"), Block("name", text=NAME_LINE),
              Block("section", "SYNOPSIS"), Block("synopsis"),
              Block("section", "DESCRIPTION")]
    blocks += [Block("para", text=t) for t in DESCRIPTION]
    blocks.append(Block("section", "OPTIONS"))
    blocks += [Block("para", text=t) for t in OPTIONS_INTRO]
    for name, options in groups:
        if options:
            blocks.append(Block("options", title=group_title(name), text=name,
                                items=_entries(options)))
    missing = [code for code in ExitCode if code not in EXIT_STATUS]
    if missing:
        raise KeyError(f"exit status {missing[0].name} is not described in EXIT_STATUS")
    blocks += [Block("section", "EXIT STATUS"),
               Block("para", text="userppp exits with pppd's statuses:"),
               Block("items", items=tuple((str(int(code)), EXIT_STATUS[code])
                                          for code in ExitCode)),
               Block("section", "FILES"), Block("items", items=tuple(FILES)),
               Block("section", "ENVIRONMENT"), Block("items", items=tuple(ENVIRONMENT)),
               Block("section", "SIGNALS"), Block("items", items=_signal_items()),
               Block("section", "SECURITY")]
    blocks += [Block("para", text=t) for t in SECURITY]
    blocks += [Block("section", "SEE ALSO"), Block("see_also", text=", ".join(SEE_ALSO))]
    return blocks


# -- roff ---------------------------------------------------------------------------

_MARKS = re.compile(r"`([^`]*)`|\*([^*\s][^*]*)\*")


def _roff_escape(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-")


def _roff_inline(text: str) -> str:
    out, last = [], 0
    for m in _MARKS.finditer(text):
        out.append(_roff_escape(text[last:m.start()]))
        if m.group(1) is not None:
            out.append(f"\\fB{_roff_escape(m.group(1))}\\fR")
        else:
            out.append(f"\\fI{_roff_escape(m.group(2))}\\fR")
        last = m.end()
    out.append(_roff_escape(text[last:]))
    return _roff_line("".join(out))


def _roff_line(line: str) -> str:
    line = line.strip()
    if line[:1] in (".", "'"):
        line = "\\&" + line
    return line


def _roff_tag(tag: str) -> str:
    """A literal (bold) tag whose ``*PLACEHOLDER*`` parts are italic."""
    parts = re.split(r"\*([^*]+)\*", tag)
    out = []
    for index, part in enumerate(parts):
        if part:
            font = "I" if index % 2 else "B"
            out.append(f"\\f{font}{_roff_escape(part)}\\fR")
    return _roff_line("".join(out))


def _roff_option_tag(entry: OptionEntry) -> str:
    if entry.positional:
        return f"\\fI{_roff_escape(entry.names[0].strip('<>'))}\\fR (by position)"
    tag = " | ".join(f"\\fB{_roff_escape(n)}\\fR" for n in entry.names)
    if entry.metavar:
        tag += f" \\fI{_roff_escape(entry.metavar)}\\fR"
    return tag


def _roff_option_text(entry: OptionEntry) -> str:
    text = _roff_line(_roff_escape(entry.summary)) if entry.summary else ""
    if entry.default is not None:
        text += f"\n.br\nDefault: \\fB{_roff_escape(entry.default)}\\fR"
    return text


def render_man(groups) -> str:
    lines = [f'.\\" Generated by {GENERATED_BY} from the option tables; do not edit.',
             f'.TH USERPPP 8 "" "userppp {__version__}" "System Manager\'s Manual"',
             ".nh"]
    for block in document(groups):
        if block.kind == "section":
            lines.append(f".SH {block.title}")
        elif block.kind == "name":
            name, _, rest = block.text.partition(" - ")
            lines.append(f"{name} \\- {_roff_escape(rest)}")
        elif block.kind == "synopsis":
            lines += [f".B {PROGRAM}",
                      "[\\fIdevice\\fR] [\\fIspeed\\fR] [\\fIlocal\\fR\\fB:\\fR\\fIremote\\fR] "
                      "[\\fIoptions\\fR]",
                      ".br",
                      f".B {PROGRAM}",
                      "\\fB\\-\\-help\\fR | \\fB\\-\\-version\\fR"]
        elif block.kind == "para":
            lines += [".PP", _roff_inline(block.text)]
        elif block.kind == "items":
            for tag, text in block.items:
                lines += [".TP", _roff_tag(tag), _roff_inline(text)]
        elif block.kind == "options":
            lines.append(f".SS {block.title}")
            for entry in block.items:
                lines += [".TP", _roff_option_tag(entry), _roff_option_text(entry)]
        elif block.kind == "see_also":
            refs = [re.match(r"(.+)\((\d)\)", ref).groups() for ref in SEE_ALSO]
            for index, (page, section) in enumerate(refs):
                comma = "," if index < len(refs) - 1 else ""
                lines.append(f".BR {_roff_escape(page)} ({section}){comma}")
        else:   # pragma: no cover - every kind is rendered above
            raise ValueError(block.kind)
    return "\n".join(line for line in lines if line != "") + "\n"


# -- markdown -------------------------------------------------------------------------

def _md_inline(text: str) -> str:
    out, last = [], 0
    for m in _MARKS.finditer(text):
        out.append(_md_escape(text[last:m.start()]))
        if m.group(1) is not None:
            out.append(f"`{m.group(1)}`")
        else:
            out.append(f"*{_md_escape(m.group(2))}*")
        last = m.end()
    out.append(_md_escape(text[last:]))
    return "".join(out)


def _md_escape(text: str) -> str:
    for char in ("\\", "|", "<", ">", "_", "*", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


def _md_code(text: str) -> str:
    # a | splits a table cell even inside a code span unless escaped (GFM)
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _md_option(entry: OptionEntry) -> str:
    if entry.positional:
        tag = f"*{entry.names[0].strip('<>')}* (by position)"
    else:
        words = [_md_code(f"{n} {entry.metavar}" if entry.metavar else n)
                 for n in entry.names]
        tag = ", ".join(words)
    text = _md_escape(entry.summary)
    if entry.default is not None:
        text += f"<br>default: {_md_code(entry.default)}"
    return f"| {tag} | {text} |"


def render_markdown(groups) -> str:
    lines = [f"<!-- Generated by {GENERATED_BY} from the option tables; do not edit. -->",
             "", "# userppp options", "",
             "The option reference of `userppp` (the man page, docs/userppp.8, says the "
             "same; `man -l docs/userppp.8`).", "",
             f"    userppp [device] [speed] [local:remote] [options]", "",
             FILES_LINE, LONG_FORMS_LINE, ""]
    section = None
    for block in document(groups):
        if block.kind == "section":
            section = block.title
            if section in ("NAME", "SYNOPSIS", "DESCRIPTION"):
                continue
            lines += [f"## {section.title() if section != 'SEE ALSO' else 'See also'}", ""]
        elif section in ("NAME", "SYNOPSIS", "DESCRIPTION"):
            continue
        elif block.kind == "para":
            lines += [_md_inline(block.text), ""]
        elif block.kind == "items":
            for tag, text in block.items:
                tag = _md_code(tag.replace("*", ""))
                lines.append(f"- {tag}: {_md_inline(text)}")
            lines.append("")
        elif block.kind == "options":
            lines += [f"### {block.title}", "", f"Declared in `{block.text}`.", "",
                      "| option | meaning |", "| --- | --- |"]
            lines += [_md_option(entry) for entry in block.items]
            lines.append("")
        elif block.kind == "see_also":
            lines += [", ".join(SEE_ALSO), ""]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


# -- the committed files ---------------------------------------------------------------

def outputs(groups=None) -> dict:
    """{path: text} of every generated file."""
    if groups is None:
        from userppp.config.tables import option_tables
        groups = option_tables()
    return {MANPAGE: render_man(groups), MARKDOWN: render_markdown(groups)}


def stale(groups=None) -> list:
    """The generated files whose committed text differs from the tables'."""
    out = []
    for path, text in outputs(groups).items():
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            out.append(path)
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv != ["--check"]:
        print(f"usage: {GENERATED_BY} [--check]", file=sys.stderr)
        return 2
    if argv == ["--check"]:
        old = stale()
        for path in old:
            print(f"{path.relative_to(ROOT)} is out of date: run {GENERATED_BY}",
                  file=sys.stderr)
        return 1 if old else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
