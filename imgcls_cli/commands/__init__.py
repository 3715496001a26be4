"""One module per subcommand; each reads top to bottom and calls the layers below."""
