"""OR-H MRMC on a large simulated reader study: seconds for the jackknife (grouped by patient) and the bootstrap.

The jackknife leaves out each patient from per-case Mann-Whitney sums (no re-ranking), so it stays in seconds at
tens of thousands of images; the bootstrap re-ranks every resample and scales with --resamples.
Usage: python benchmarks/mrmc_scale.py [--images 20000] [--readers 10] [--images-per-patient 4] [--resamples 200]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from proctovision.evaluation import mrmc


def simulated_study(images: int, readers: int, per_patient: int, seed: int = 0):
    """Two conditions, binormal reader scores with a shared case effect, patients with several images."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(images) < 0.4).astype(int)
    case_effect = rng.normal(0, 0.7, images)
    ratings = np.stack([[truth * (1.2 + 0.2 * condition) + case_effect + rng.normal(0, 1, images)
                         for _ in range(readers)] for condition in range(2)])
    return truth, ratings, np.arange(images) // per_patient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--images-per-patient", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    truth, ratings, patients = simulated_study(args.images, args.readers, args.images_per_patient)
    print(f"{args.images} images, {len(np.unique(patients))} patients, {args.readers} readers, 2 conditions")
    for method in ("jackknife", "bootstrap"):
        start = time.perf_counter()
        result = mrmc.or_analysis(truth, ratings, groups=patients, method=method, n_resamples=args.resamples)
        seconds = time.perf_counter() - start
        difference = result["rrrc"]["differences"][0]
        label = method + (f" ({args.resamples} resamples)" if method == "bootstrap" else "")
        print(f"{label}: {seconds:.2f} s; AUC difference {difference['difference']:+.4f} "
              f"(95% CI {difference['ci95'][0]:+.4f} to {difference['ci95'][1]:+.4f}), ddf {difference['df']:.1f}")


if __name__ == "__main__":
    main()
