"""The `websonic` command: thin commands that parse, call one service, render."""
