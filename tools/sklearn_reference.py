"""scikit-learn's answers for the metric cases that test/metrics.test.ts sends.

stdin:  JSON {"cases": [{"labels": [0, 1, ...], "scores": [...], "probs": [...]}, ...]}
stdout: JSON [{"roc_auc": float, "log_loss": float}, ...], one entry per case, same order.

Arrays are float64 (JSON numbers round-trip exactly), so log_loss clips at np.finfo(float64).eps.
`labels=[0, 1]` lets log_loss accept a single-class case; roc_auc_score is only asked when
both classes are present (it is undefined otherwise) and answers null then.
"""

import json
import sys

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score


def main() -> None:
    request = json.load(sys.stdin)
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
            }
        )
    json.dump(answers, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
