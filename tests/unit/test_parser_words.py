"""pppd's options-file word syntax (pppd(8) "OPTIONS FILES", options.c getword)."""

import pytest

from userppp.config.parser import SyntaxProblem, Word, split_words


def texts(source):
    return [w.text for w in split_words(source)]


def test_words_separated_by_any_white_space():
    assert texts("lock  crtscts\tdebug\n\n  mru 1500\r\n") == [
        "lock", "crtscts", "debug", "mru", "1500"]


def test_empty_and_comment_only_files():
    assert texts("") == []
    assert texts("   \n\t\n") == []
    assert texts("# just a comment\n#another") == []


def test_comment_runs_to_end_of_line():
    assert texts("lock # hold the device\ndebug #x y z\n#lcp-echo-interval 5\nmru 296") == [
        "lock", "debug", "mru", "296"]


def test_hash_inside_a_word_is_ordinary_as_in_pppd():
    assert texts("name foo#bar") == ["name", "foo#bar"]


def test_double_and_single_quotes_group_words():
    assert texts('connect "chat -v -f /etc/ppp/x.chat" remotename \'my peer\'') == [
        "connect", "chat -v -f /etc/ppp/x.chat", "remotename", "my peer"]


def test_quotes_keep_hash_and_other_quote_kind():
    assert texts('''name "a # b" x 'say "hi"' y "it's"''') == [
        "name", "a # b", "x", 'say "hi"', "y", "it's"]


def test_quotes_join_adjacent_text_into_one_word():
    assert texts('ab"c d"e\'f\'') == ["abc def"]


def test_empty_quoted_string_is_an_empty_word():
    assert texts('remotename "" lock') == ["remotename", "", "lock"]


def test_seed_name_with_escaped_backslash():
    # the seed document, section 5.2 (tests/vectors/README.md): name "domain\\my_login"
    assert texts('name "domain\\\\my_login"') == ["name", "domain\\my_login"]


@pytest.mark.parametrize("escape, char", [
    ("\\a", "\a"), ("\\b", "\b"), ("\\f", "\f"), ("\\n", "\n"), ("\\r", "\r"),
    ("\\s", " "), ("\\t", "\t"), ("\\\\", "\\"), ('\\"', '"'), ("\\'", "'"),
    ("\\#", "#"), ("\\ ", " "), ("\\q", "q"),
    ("\\101", "A"), ("\\0", "\0"), ("\\12", "\n"), ("\\1012", "A2"),
    ("\\x41", "A"), ("\\x4", "\x04"), ("\\x414", "A4"), ("\\xg", "xg"),
])
def test_escapes_outside_and_inside_quotes(escape, char):
    assert texts(f"a{escape}z") == [f"a{char}z"]
    assert texts(f'"a{escape}z"') == [f"a{char}z"]


def test_escaped_space_and_hash_do_not_split_or_comment():
    assert texts("two\\ words \\#notacomment") == ["two words", "#notacomment"]


def test_backslash_newline_continues_a_word_and_a_line():
    assert texts("lcp-echo-\\\ninterval 20") == ["lcp-echo-interval", "20"]
    assert texts("lock \\\n debug") == ["lock", "debug"]
    assert texts('name "ab\\\ncd"') == ["name", "abcd"]


def test_trailing_backslash_at_end_of_file_is_an_error():
    # Shared with secrets files: a dangling escape is a mistake, not a word.
    with pytest.raises(SyntaxProblem, match="backslash at end of file") as info:
        texts("a\nabc\\")
    assert info.value.line == 2


def test_newline_inside_quotes_is_part_of_the_word():
    assert texts('x "a\nb" y') == ["x", "a\nb", "y"]


def test_line_numbers_are_where_each_word_starts():
    words = split_words('lock\n\n# c\nname "multi\nline"\n  mru \\\n 1500\nx')
    assert words == [Word("lock", 1), Word("name", 4), Word("multi\nline", 4),
                     Word("mru", 6), Word("1500", 7), Word("x", 8)]


def test_unterminated_quote_is_an_error_with_its_line():
    with pytest.raises(SyntaxProblem) as info:
        split_words('lock\nname "oops\nmore\n')
    assert info.value.line == 2
    assert "unterminated" in str(info.value)


def test_unicode_passes_through():
    assert texts("name 'Jürgen ✓'") == ["name", "Jürgen ✓"]


def test_only_c_locale_white_space_separates_words():
    assert texts("name a\u00a0b") == ["name", "a\u00a0b"]
    assert texts("a\vb\fc") == ["a", "b", "c"]


# -- properties -----------------------------------------------------------------

from hypothesis import given, settings, strategies as st

from userppp.config.parser import _quote


@given(st.text())
@settings(max_examples=400)
def test_any_text_splits_or_reports_a_quote_problem(source):
    try:
        words = split_words(source)
    except SyntaxProblem as problem:
        assert 1 <= problem.line <= source.count("\n") + 1
    else:
        assert all(1 <= w.line <= source.count("\n") + 1 for w in words)


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\'\\#\n \t\x00')))
@settings(max_examples=400)
def test_quoted_words_read_back(word):
    assert texts(_quote(word)) == [word]
    assert texts(f"x {_quote(word)} y") == ["x", word, "y"]


@given(st.lists(st.text(max_size=6), max_size=6))
def test_joined_quoted_words_read_back(words):
    assert texts(" ".join(_quote(w) for w in words)) == words
