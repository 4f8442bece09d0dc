"""The smallest inputs that showed each fuzz finding (tests/fuzz/README.md).

Each is marked xfail(strict=True) until its fix lands: the fix makes the
test pass, strict turns that into a failure, and the marker (and the entry
in fuzz_targets.KNOWN_FINDINGS) is then removed.
"""

import pytest

from userppp import chat, vj
from userppp.config.secrets import SecretsError, parse_secrets


@pytest.mark.xfail(strict=True, reason="fuzz finding 1: VJ decompress_many drops an empty "
                   "0x21 frame in the C core but passes it through in the twin")
def test_vj_empty_ip_frame_same_in_c_and_twin():
    out = {}
    for backend in ("c", "ref"):
        d = vj.VjDecompressor(16, 1500, backend=backend)
        out[backend] = (d.decompress_many([(vj.PROTO_IP, b"")]), d.stats())
    assert out["c"] == out["ref"]


@pytest.mark.xfail(strict=True, reason="fuzz finding 2: chat's _atoi takes '²' (latin-1 "
                   "byte 0xB2 in a script) for a digit and int() raises ValueError out of "
                   "the interpreter")
def test_chat_timeout_with_a_superscript_digit_does_not_raise():
    script = chat.tokenize_script(b"TIMEOUT \xb2\n'' AT\n".decode("latin-1"))
    c = chat.Chat(script)
    c.start(0.0)                 # raises ValueError today
    assert not c.done or c.exit_code is not None


@pytest.mark.xfail(strict=True, reason="fuzz finding 3: an indirect secret whose path holds "
                   "a newline gives a SecretsError of two lines that does not name the "
                   "secrets file and line")
def test_indirect_secret_error_is_one_line_naming_the_file():
    with pytest.raises(SecretsError) as info:
        parse_secrets("a b @/x\\ny\n", "chap-secrets", read_file=lambda path: '"')
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("chap-secrets:1:")
