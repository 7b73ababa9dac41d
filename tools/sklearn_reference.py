"""scikit-learn's answers for the metric cases that test/metrics.test.ts sends.

stdin:  JSON {"cases": [{"labels": [0, 1, ...], "scores": [...], "probs": [...]}, ...], "ece_bins": 15}
stdout: JSON [{"roc_auc": float, "log_loss": float, "ece": float}, ...], one entry per case, same order.

Arrays are float64 (JSON numbers round-trip exactly), so log_loss clips at np.finfo(float64).eps.
`labels=[0, 1]` lets log_loss accept a single-class case; roc_auc_score is only asked when
both classes are present (it is undefined otherwise) and answers null then.

ECE: the bin means are scikit-learn's calibration_curve(strategy="uniform"); the bin counts
(which it does not return) come from numpy, binning as calibration_curve does (searchsorted on
the inner edges of linspace(0, 1, bins + 1)); ECE = sum of count / n * |fraction of positives -
mean probability| over the non-empty bins.
"""

import json
import sys

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss, roc_auc_score


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int) -> float:
    prob_true, prob_pred = calibration_curve(labels, probs, n_bins=bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], probs), minlength=bins)
    counts = counts[counts > 0]
    assert len(counts) == len(prob_true), "one count per non-empty bin"
    return float(np.sum(counts / len(probs) * np.abs(prob_true - prob_pred)))


def main() -> None:
    request = json.load(sys.stdin)
    bins = int(request.get("ece_bins", 15))
    answers = []
    for case in request["cases"]:
        labels = np.asarray(case["labels"], dtype=np.int64)
        scores = np.asarray(case["scores"], dtype=np.float64)
        probs = np.asarray(case["probs"], dtype=np.float64)
        both_classes = len(np.unique(labels)) == 2
        answers.append(
            {
                "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else None,
                # Positional y_proba: the keyword was renamed (y_pred -> y_proba) in 1.9.
                "log_loss": float(log_loss(labels, probs, labels=[0, 1])),
                "ece": expected_calibration_error(labels, probs, bins),
            }
        )
    json.dump(answers, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
