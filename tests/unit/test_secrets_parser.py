"""pap-secrets / chap-secrets parsing and lookup (pppd's format and ranking)."""


import pytest

from userppp.config.secrets import Secrets, SecretsError, parse_secrets, split_lines

SECRET = "Tr0ub4dor&3"


def one(text, **kw):
    entries, warnings = parse_secrets(text, "/etc/ppp/chap-secrets", **kw)
    return entries, warnings


def test_plain_line():
    [e], w = one("bob server pass\n")
    assert (e.client, e.server, e.secret, e.addresses) == ("bob", "server", "pass", ())
    assert e.source == "/etc/ppp/chap-secrets" and e.line == 1 and w == []


def test_addresses():
    [e], _ = one("bob * pw 10.0.0.1 10.0.1.0/24 -10.0.1.5\n")
    assert e.addresses == ("10.0.0.1", "10.0.1.0/24", "-10.0.1.5")


def test_comments_and_blank_lines():
    text = "# a comment\n\n   # indented comment\nbob server pw   # trailing comment\n"
    [e], _ = one(text)
    assert e.secret == "pw" and e.addresses == () and e.line == 4


def test_hash_inside_a_word_is_literal():
    [e], _ = one("bob server pa#ss\n")
    assert e.secret == "pa#ss"


def test_double_and_single_quotes():
    [e1, e2, e3], _ = one('"bob smith" server "two words"\n'
                          "'alice' '*' 'it''s'\n"
                          'carol server ""\n')
    assert e1.client == "bob smith" and e1.secret == "two words"
    assert e2.client == "alice" and e2.server == "*" and e2.secret == "its"
    assert e3.secret == ""


def test_quote_inside_word_and_other_quote_literal():
    [e], _ = one("""bob server ab"c d"e'f' "x'y"\n""")
    assert e.secret == "abc def"
    assert e.addresses == ("x'y",)


def test_backslash_escapes():
    [e], _ = one(r'bob server a\sb\tc\nd\\e\"f\101\x42\q' + "\n")
    assert e.secret == 'a b\tc\nd\\e"fABq'


def test_backslash_inside_double_quotes():
    [e], _ = one(r'"dom\\user" server "p\"w"' + "\n")
    assert e.client == "dom\\user" and e.secret == 'p"w'


def test_backslash_newline_continues_the_line():
    [e], _ = one("bob server \\\n  pw 10.0.0.1\n")
    assert e.secret == "pw" and e.addresses == ("10.0.0.1",)


def test_quoted_string_may_span_lines():
    [e, f], _ = one('bob server "a\nb"\nalice server c\n')
    assert e.secret == "a\nb"
    assert (f.client, f.line) == ("alice", 3)


def test_crlf_line_endings():
    entries, _ = one("bob server pw\r\nalice server pw2\r\n")
    assert [e.secret for e in entries] == ["pw", "pw2"]


def test_at_file_secret():
    entries, w = one("bob server @/etc/ppp/bob.pw\n",
                     read_file={"/etc/ppp/bob.pw": "  file-secret trailing words\n"}.__getitem__)
    assert entries[0].secret == "file-secret" and w == []


def test_at_file_missing_skips_line_with_warning():
    def read_file(path):
        raise FileNotFoundError(path)
    entries, w = one("bob server @/nope\nalice server x\n", read_file=read_file)
    assert [e.client for e in entries] == ["alice"]
    assert w == ["/etc/ppp/chap-secrets:1: can't open indirect secret file /nope"]


def test_at_without_slash_is_literal():
    [e], _ = one("bob server @login\n")
    assert e.secret == "@login"


def test_from_text_files_mapping():
    s = Secrets.from_text(pap="bob * @/pw\n", files={"/pw": "xyz\n"})
    assert s.lookup("pap", "bob", "any").secret == "xyz"


# ---------------------------------------------------------------- errors
def test_unterminated_quote_names_file_and_line():
    text = "a b c\n" * 6 + f'bob server "{SECRET}\n'
    with pytest.raises(SecretsError) as info:
        one(text)
    assert str(info.value) == "/etc/ppp/chap-secrets:7: unterminated quoted string"
    assert SECRET not in str(info.value)


def test_unterminated_single_quote():
    with pytest.raises(SecretsError, match=r"^/etc/ppp/chap-secrets:2: unterminated"):
        one(f"a b c\nbob server '{SECRET}")


def test_missing_secret_is_an_error():
    with pytest.raises(SecretsError) as info:
        one("bob server\n")
    assert str(info.value) == "/etc/ppp/chap-secrets:1: expected client, server and secret"


def test_backslash_at_end_of_file():
    with pytest.raises(SecretsError, match=r":1: backslash at end of file"):
        one(f"bob server {SECRET}\\")
    try:
        one(f"bob server {SECRET}\\")
    except SecretsError as exc:
        assert SECRET not in str(exc)


def test_load_from_disk(tmp_path):
    pap = tmp_path / "pap-secrets"
    chap = tmp_path / "chap-secrets"
    pw = tmp_path / "pw"
    pw.write_text("indirect\n")
    pap.write_text(f"bob * {SECRET} 10.0.0.2\n")
    chap.write_text(f"bob server @{pw}\n")
    s = Secrets.load(str(pap), str(chap))
    assert s.lookup("pap", "bob", "x").secret == SECRET
    assert s.lookup("pap", "bob", "x").addresses == ("10.0.0.2",)
    assert s.lookup("chap", "bob", "server").secret == "indirect"


def test_load_missing_files_is_empty(tmp_path):
    s = Secrets.load(str(tmp_path / "nope1"), str(tmp_path / "nope2"))
    assert s.entries("pap") == () and s.entries("chap") == ()


def test_load_error_names_real_path(tmp_path):
    chap = tmp_path / "chap-secrets"
    chap.write_text(f'# x\nbob server "{SECRET}\n')
    with pytest.raises(SecretsError) as info:
        Secrets.load(None, str(chap))
    assert str(info.value) == f"{chap}:2: unterminated quoted string"


# ---------------------------------------------------------------- hiding
def test_repr_hides_secret():
    [e], _ = one(f"bob server {SECRET}\n")
    assert SECRET not in repr(e) and SECRET not in str(e)
    assert "<hidden>" in repr(e)
    s = Secrets([e])
    assert SECRET not in repr(s)


# ---------------------------------------------------------------- lookup ranking
TABLE = """
* * wild-both
* server wild-client
bob * wild-server
bob server exact
bob server exact-second
alice * alice-any
"""


def test_exact_beats_everything():
    s = Secrets.from_text(chap=TABLE)
    assert s.lookup("chap", "bob", "server").secret == "exact"     # first of equals


def test_exact_client_beats_exact_server():
    s = Secrets.from_text(chap="* server by-server\nbob * by-client\n")
    assert s.lookup("chap", "bob", "server").secret == "by-client"


def test_exact_server_beats_both_wild():
    s = Secrets.from_text(chap="* * both\n* server by-server\n")
    assert s.lookup("chap", "carol", "server").secret == "by-server"
    assert s.lookup("chap", "carol", "other").secret == "both"


def test_no_match():
    s = Secrets.from_text(chap="bob server x\n")
    assert s.lookup("chap", "alice", "server") is None
    assert s.lookup("chap", "bob", "other") is None
    assert s.lookup("pap", "bob", "server") is None


def test_none_means_any():
    s = Secrets.from_text(chap=TABLE)
    assert s.lookup("chap", "alice", None).secret == "alice-any"
    assert s.lookup("chap", None, "server").secret == "exact"
    assert s.has("chap", None, "nowhere")          # "* *" matches
    assert not Secrets().has("chap")


def test_star_is_only_wild_alone():
    s = Secrets.from_text(chap="bo* server x\n")
    assert s.lookup("chap", "bob", "server") is None
    assert s.lookup("chap", "bo*", "server").secret == "x"


def test_empty_name_matches_quoted_empty():
    s = Secrets.from_text(chap='bob "" x\n')
    assert s.lookup("chap", "bob", "").secret == "x"
    assert s.lookup("chap", "bob", "server") is None


def test_unknown_kind():
    with pytest.raises(ValueError):
        Secrets().lookup("eap", "a", "b")


def test_split_lines_groups_words_by_line():
    assert split_lines("a b\n\nc 'd\ne' f\ng", "x") == [
        [("a", 1), ("b", 1)], [("c", 3), ("d\ne", 3), ("f", 4)], [("g", 5)]]


def test_first_of_equal_rank_wins():
    s = Secrets.from_text(chap="bob * first\nbob * second\n* * w1\n* * w2\n")
    assert s.lookup("chap", "bob", "x").secret == "first"
    assert s.lookup("chap", "carol", "x").secret == "w1"


# ---------------------------------------------------------------- size caps
def test_secrets_file_past_the_cap_is_one_line():
    # /dev/zero never ends: reading it whole was a MemoryError
    with pytest.raises(SecretsError) as info:
        Secrets.load(None, "/dev/zero")
    assert str(info.value) == "secrets file /dev/zero is larger than 1048576 bytes"


def test_indirect_secret_past_the_cap_names_file_and_line(tmp_path):
    chap = tmp_path / "chap-secrets"
    chap.write_text(f"# x\nbob server {SECRET}\nalice server @/dev/zero\n")
    with pytest.raises(SecretsError) as info:
        Secrets.load(None, str(chap))
    assert str(info.value) == (
        f"{chap}:3: indirect secret file /dev/zero is larger than 1048576 bytes")
    assert SECRET not in str(info.value)


def test_indirect_secret_at_the_cap_is_read(tmp_path):
    from userppp.config.files import MAX_FILE_SIZE
    pw = tmp_path / "pw"
    pw.write_bytes(b"big\n" + b" " * (MAX_FILE_SIZE - 4))
    chap = tmp_path / "chap-secrets"
    chap.write_text(f"bob server @{pw}\n")
    assert Secrets.load(None, str(chap)).lookup("chap", "bob", "server").secret == "big"
