"""Crosscoder against post-hoc SAE matching on synthetic pairs (see featgeom_tda.pipeline.crosscoder_check).

    python examples/crosscoder_truth.py                 # 5 fractions, seed 0, a few minutes on 2 cores
    python examples/crosscoder_truth.py --seeds 0 1 2   # mean over seeds
"""

import argparse

from featgeom_tda.pipeline.crosscoder_check import crosscoder_truth_markdown, crosscoder_truth_rows

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
parser.add_argument("--seeds", type=int, nargs="+", default=[0])
args = parser.parse_args()
print(crosscoder_truth_markdown(crosscoder_truth_rows(fractions=args.fractions, seeds=args.seeds)))
