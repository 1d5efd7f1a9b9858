"""Generate the example decision files of a credit-scoring model: stable and candidate.

Both files describe the same 4000 applicants (attributes ``sex`` and ``age_band``, a true
outcome ``label`` of which about 15% has not arrived yet) scored by two model versions. The
candidate behaves like the stable model everywhere except for women aged 60+, whose qualified
applicants it approves about 10 points less often (a true-positive-rate drop that shows fully
only in the intersection; the marginal groups move much less). Scores of the two versions
share one uniform draw per applicant (common random numbers) plus a little independent
jitter, so every other slice stays close. Deterministic: run it again and the files are
identical.

    python examples/data/generate.py            # writes next to this script
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from scipy import stats

SEED = 20260101
ROWS = 4000
THRESHOLD = 0.5
UNLABELLED_SHARE = 0.15
SEXES = ("F", "M")
AGE_BANDS = ("18-29", "30-59", "60+")
AGE_SHARES = (0.25, 0.55, 0.20)
BASE_RATE = {"18-29": 0.35, "30-59": 0.45, "60+": 0.40}
POSITIVE_SCORES = (4.0, 2.0)  # Beta shape: P(score >= 0.5 | qualified) = 0.81
NEGATIVE_SCORES = (2.0, 4.0)  # Beta shape: P(score >= 0.5 | not qualified) = 0.19
CANDIDATE_BIASED_POSITIVE_SCORES = (3.3, 2.0)  # P(score >= 0.5 | qualified) = 0.73
SCORE_JITTER = 0.02
LATENCY_MEDIAN_SECONDS = 0.045
LATENCY_SIGMA = 0.6


def population(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Applicants, their true outcomes, which outcomes are known, and a per-row score draw."""
    sex = rng.choice(SEXES, size=ROWS)
    age_band = rng.choice(AGE_BANDS, size=ROWS, p=AGE_SHARES)
    base_rate = np.array([BASE_RATE[band] for band in age_band])
    return {
        "sex": sex,
        "age_band": age_band,
        "label": (rng.random(ROWS) < base_rate).astype(int),
        "known": rng.random(ROWS) >= UNLABELLED_SHARE,
        "quantile": rng.random(ROWS),
    }


def scores(people: dict[str, np.ndarray], candidate: bool, rng: np.random.Generator) -> np.ndarray:
    """Scores from the shared per-row quantile (common random numbers) plus small jitter."""
    positive = people["label"] == 1
    shapes_a = np.where(positive, POSITIVE_SCORES[0], NEGATIVE_SCORES[0])
    shapes_b = np.where(positive, POSITIVE_SCORES[1], NEGATIVE_SCORES[1])
    if candidate:
        biased = positive & (people["sex"] == "F") & (people["age_band"] == "60+")
        shapes_a = np.where(biased, CANDIDATE_BIASED_POSITIVE_SCORES[0], shapes_a)
        shapes_b = np.where(biased, CANDIDATE_BIASED_POSITIVE_SCORES[1], shapes_b)
    raw = np.asarray(stats.beta.ppf(people["quantile"], shapes_a, shapes_b), dtype=np.float64)
    jittered = raw + rng.normal(0.0, SCORE_JITTER, size=ROWS)
    return np.round(np.clip(jittered, 0.0, 1.0), 3)


def write(path: Path, people: dict[str, np.ndarray], candidate: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    score = scores(people, candidate, rng)
    latency = np.round(rng.lognormal(np.log(LATENCY_MEDIAN_SECONDS), LATENCY_SIGMA, size=ROWS), 4)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sex", "age_band", "prediction", "label", "score", "latency_seconds"])
        for i in range(ROWS):
            label = str(people["label"][i]) if people["known"][i] else ""
            prediction = int(score[i] >= THRESHOLD)
            writer.writerow(
                [
                    people["sex"][i],
                    people["age_band"][i],
                    prediction,
                    label,
                    f"{score[i]:.3f}",
                    f"{latency[i]:.4f}",
                ]
            )


def main(directory: Path) -> None:
    people = population(np.random.default_rng(SEED))
    write(directory / "credit-stable.csv", people, candidate=False, seed=SEED + 1)
    write(directory / "credit-candidate.csv", people, candidate=True, seed=SEED + 2)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
