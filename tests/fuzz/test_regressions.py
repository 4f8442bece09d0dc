"""The smallest inputs that showed each fuzz finding (tests/fuzz/README.md).

A finding is marked xfail(strict=True) until its fix lands; the fix removes
the marker and its entry in fuzz_targets.KNOWN_FINDINGS, and the test stays as
the regression test.
"""

import pytest

from userppp import chat, vj
from userppp.config.secrets import SecretsError, parse_secrets


# fuzz finding 1 (fixed)
def test_vj_empty_ip_frame_same_in_c_and_twin():
    out = {}
    for backend in ("c", "ref"):
        d = vj.VjDecompressor(16, 1500, backend=backend)
        out[backend] = (d.decompress_many([(vj.PROTO_IP, b"")]), d.stats())
    assert out["c"] == out["ref"]


# fuzz finding 2 (fixed): chat's _atoi took '²' (latin-1 byte 0xB2) for a digit
def test_chat_timeout_with_a_superscript_digit_does_not_raise():
    script = chat.tokenize_script(b"TIMEOUT \xb2\n'' AT\n".decode("latin-1"))
    c = chat.Chat(script)
    c.start(0.0)
    assert not c.done or c.exit_code is not None


# fuzz finding 3 (fixed)
def test_indirect_secret_error_is_one_line_naming_the_file():
    with pytest.raises(SecretsError) as info:
        parse_secrets("a b @/x\\ny\n", "chap-secrets", read_file=lambda path: '"')
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("chap-secrets:1:")
