"""``python -m headstart``: the CLI, also as a module (``accelerate launch -m headstart fit ...``), and the entry
point of the `headstart` script: Ctrl-C while the CLI itself loads (a second or so) ends with a line, not a traceback."""

import sys


def main() -> None:
    """Load the CLI and run it."""
    try:
        from headstart.cli.app import main as cli
    except KeyboardInterrupt:
        print("interrupted: stopped while headstart was starting; nothing was read or written.", file=sys.stderr)
        sys.exit(130)
    cli()


if __name__ == "__main__":
    main()
