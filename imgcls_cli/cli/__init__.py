"""The command line: the Typer app, its option groups and the Rich console."""
