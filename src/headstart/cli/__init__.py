"""The `headstart` command line: one thin module per verb over headstart.api."""
