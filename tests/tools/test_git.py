from __future__ import annotations

from websonic.tools import git

LS_REMOTE = (
    "1111111111111111111111111111111111111111\trefs/heads/main\n"
    "2222222222222222222222222222222222222222\trefs/tags/v1\n"
    "3333333333333333333333333333333333333333\trefs/tags/v1^{}\n"
)


def test_parse_ls_remote_peels_annotated_tags() -> None:
    refs = git.parse_ls_remote(LS_REMOTE)
    assert refs["refs/heads/main"].startswith("1111")
    assert refs["refs/tags/v1"].startswith("3333")


def test_commands_never_prompt() -> None:
    command = git.ls_remote("https://example.invalid/x.git")
    assert command.env["GIT_TERMINAL_PROMPT"] == "0"
    assert command.argv[-2:] == ("--", "https://example.invalid/x.git")


def test_parse_head_info() -> None:
    assert git.parse_head_info("abc 1700000000\n") == ("abc", 1700000000)
