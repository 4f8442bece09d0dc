"""The options file Debian's ppp package installs as /etc/ppp/options must
parse: a pppd user who installs userppp beside it keeps that file."""

from userppp.config.parser import OptionParser
from userppp.config.tables import option_tables

# The uncommented lines of Debian 12's /etc/ppp/options (ppp 2.4.9).
DEBIAN_OPTIONS = """\
asyncmap 0
auth
crtscts
lock
hide-password
modem
lcp-echo-interval 30
lcp-echo-failure 4
noipx
"""


def test_debian_default_options_file_parses(tmp_path):
    path = tmp_path / "options"
    path.write_text(DEBIAN_OPTIONS)
    settings = OptionParser(option_tables()).parse_file(str(path))
    assert settings.lcp_echo_interval == 30 and settings.lcp_echo_failure == 4
    assert settings.crtscts and settings.lock
