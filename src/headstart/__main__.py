"""``python -m headstart``: the CLI, also as a module (``accelerate launch -m headstart fit ...``)."""

from headstart.cli.app import main

if __name__ == "__main__":
    main()
