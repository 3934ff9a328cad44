"""The command line: thin commands that call one service function each."""
