"""``python -m vigie.evaluate PATH ...``: the same as ``vigie evaluate PATH ...``."""

import argparse
import sys

from vigie.core.errors import ConfigError
from vigie.evaluate import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m vigie.evaluate", description=__doc__)
    add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except ConfigError as exc:  # as the vigie command says it: one line, exit 2
        print(f"{parser.prog}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
