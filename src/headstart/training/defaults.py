"""Defaults of the training machinery that the strategies' options declare, importable without torch
(``headstart fit --help`` reads the declarations)."""

DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)  # the linear probe's inverse regularisation strengths
