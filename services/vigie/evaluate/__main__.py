"""``python -m vigie.evaluate PATH ...``: the same as ``vigie evaluate PATH ...``."""

import argparse
import sys

from vigie.evaluate import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m vigie.evaluate", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
