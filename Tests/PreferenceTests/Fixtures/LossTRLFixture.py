"""Generates LossTRLFixtureTests.swift: TRL DPOTrainer loss values and gradients on fixed log-probs.

Run: /work/venv/bin/python Tests/PreferenceTests/Fixtures/LossTRLFixture.py   (needs torch and trl; tested with trl 1.16.0)

TRL 1.x computes its loss inside DPOTrainer._compute_loss from a model's per-token log-probs.
This script calls that method on a stand-in trainer (only the attributes it reads) and a
stand-in model whose per-token log-probs are a leaf tensor we choose: each row's sequence
log-prob is spread evenly over its completion tokens, so the gradient with respect to any
completion token is the gradient with respect to the row's sum. Reference log-probs are passed
as precomputed (TRL's precompute path). Per-pair losses come from calling it on each pair alone
(sft's NLL is averaged over the batch's tokens, so only its batch value is recorded).
"""
import collections
import math
import types

import torch
import trl
from trl.trainer.dpo_trainer import DPOTrainer

torch.set_default_dtype(torch.float64)

# Four pairs: sums of completion log-probs and completion lengths (chosen rows first).
POLICY_CHOSEN = [-12.5, -30.25, -7.0, -18.0]
POLICY_REJECTED = [-14.0, -28.5, -9.5, -25.75]
REFERENCE_CHOSEN = [-13.0, -29.0, -8.25, -17.5]
REFERENCE_REJECTED = [-13.5, -29.5, -8.0, -24.0]
CHOSEN_TOKENS = [5, 9, 3, 7]
REJECTED_TOKENS = [6, 8, 4, 10]


class FakeAccelerator:
    device = torch.device("cpu")

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x


def fake_trainer(loss_types, loss_weights, beta, label_smoothing):
    t = types.SimpleNamespace()
    t.model = types.SimpleNamespace(training=True)
    t.accelerator = FakeAccelerator()
    t.aux_loss_enabled = False
    t.beta = beta
    t.label_smoothing = label_smoothing
    t.loss_types = loss_types
    t.loss_weights = loss_weights
    t.ld_alpha = None
    t.f_divergence_type = "reverse_kl"
    t.f_alpha_divergence_coef = 1.0
    t.precompute_ref_logps = True
    t.use_weighting = False
    t.ref_model = None
    t._metrics = collections.defaultdict(lambda: collections.defaultdict(list))
    t._total_train_tokens = 0
    t._tp_size = 1
    t.args = types.SimpleNamespace()
    return t


def run(pairs, loss_types, loss_weights, beta, smoothing, reference_free):
    """Returns (loss, d loss / d policy chosen sums, ... rejected sums, metrics)."""
    pc = [POLICY_CHOSEN[i] for i in pairs]
    pr = [POLICY_REJECTED[i] for i in pairs]
    rc = [0.0 if reference_free else REFERENCE_CHOSEN[i] for i in pairs]
    rr = [0.0 if reference_free else REFERENCE_REJECTED[i] for i in pairs]
    lengths = [CHOSEN_TOKENS[i] for i in pairs] + [REJECTED_TOKENS[i] for i in pairs]
    sums = pc + pr
    rows, width = len(lengths), max(lengths) + 1
    completion_mask = torch.zeros(rows, width + 1, dtype=torch.long)
    per_token = torch.zeros(rows, width)
    for row, (n, total) in enumerate(zip(lengths, sums)):
        completion_mask[row, 1 : 1 + n] = 1
        per_token[row, :n] = total / n
    per_token.requires_grad_(True)

    def model(**kwargs):
        return types.SimpleNamespace(
            log_probs=per_token,
            entropy=torch.zeros(rows, width),
            mean_logits=torch.zeros(rows, width),
            is_top1=torch.zeros(rows, width, dtype=torch.bool),
        )

    inputs = {
        "input_ids": torch.zeros(rows, width + 1, dtype=torch.long),
        "attention_mask": torch.ones(rows, width + 1, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": torch.tensor(rc),
        "ref_rejected_logps": torch.tensor(rr),
    }
    trainer = fake_trainer(loss_types, loss_weights, beta, smoothing)
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    loss.backward()
    grad = per_token.grad
    b = len(pairs)
    d_chosen = [grad[i, 0].item() for i in range(b)]
    d_rejected = [grad[b + i, 0].item() for i in range(b)]
    metrics = {k: v[0] for k, v in trainer._metrics["train"].items()}
    return loss.item(), d_chosen, d_rejected, metrics


# (name in the fixture, --loss, TRL loss types, TRL weights, beta, label smoothing, rpo alpha, reference free)
CASES = [
    ("sigmoid", "sigmoid", ["sigmoid"], [1.0], 0.1, 0.0, 0.0, False),
    ("sigmoid_beta_0.5", "sigmoid", ["sigmoid"], [1.0], 0.5, 0.0, 0.0, False),
    ("sigmoid_reference_free", "sigmoid", ["sigmoid"], [1.0], 0.1, 0.0, 0.0, True),
    ("ipo", "ipo", ["ipo"], [1.0], 0.1, 0.0, 0.0, False),
    ("ipo_beta_1", "ipo", ["ipo"], [1.0], 1.0, 0.0, 0.0, False),
    ("hinge", "hinge", ["hinge"], [1.0], 0.1, 0.0, 0.0, False),
    ("hinge_beta_2", "hinge", ["hinge"], [1.0], 2.0, 0.0, 0.0, False),
    ("robust", "robust", ["robust"], [1.0], 0.1, 0.2, 0.0, False),
    ("bco_pair", "bco_pair", ["bco_pair"], [1.0], 0.1, 0.0, 0.0, False),
    ("sppo_hard", "sppo_hard", ["sppo_hard"], [1.0], 0.1, 0.0, 0.0, False),
    ("nca_pair", "nca_pair", ["nca_pair"], [1.0], 0.1, 0.0, 0.0, False),
    ("apo_zero", "apo_zero", ["apo_zero"], [1.0], 0.1, 0.0, 0.0, False),
    ("apo_down", "apo_down", ["apo_down"], [1.0], 0.1, 0.0, 0.0, False),
    ("exo_pair", "exo_pair", ["exo_pair"], [1.0], 0.1, 1e-3, 0.0, False),
    ("exo_pair_smoothing_0.2", "exo_pair", ["exo_pair"], [1.0], 0.5, 0.2, 0.0, False),
    ("sft", "sft", ["sft"], [1.0], 0.1, 0.0, 0.0, False),
    # RPO = the pairwise loss plus alpha x TRL's sft term.
    ("sigmoid_rpo_0.5", "sigmoid", ["sigmoid", "sft"], [1.0, 0.5], 0.1, 0.0, 0.5, False),
    ("ipo_rpo_1", "ipo", ["ipo", "sft"], [1.0, 1.0], 0.1, 0.0, 1.0, False),
]


def swift_array(values):
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def main():
    out = []
    out.append("// GENERATED by LossTRLFixture.py from trl %s, torch %s. Do not edit." % (trl.__version__, torch.__version__))
    out.append("// TRL DPOTrainer._compute_loss on fixed log-probs: the data LossTRLCrossCheckTests compares against.")
    out.append("")
    out.append("struct TRLLossCase {")
    out.append("    let name: String, loss: String, beta: Double, labelSmoothing: Double, rpoAlpha: Double, referenceFree: Bool")
    out.append("    /// Per-pair loss of each pair run alone (empty for sft, whose NLL averages over the batch).")
    out.append("    let pairLosses: [Double]")
    out.append("    let batchLoss: Double, dPolicyChosen: [Double], dPolicyRejected: [Double]")
    out.append("    let rewardsChosen: Double, rewardsRejected: Double, rewardsAccuracies: Double, rewardsMargins: Double")
    out.append("    let logpsChosen: Double, logpsRejected: Double")
    out.append("}")
    out.append("")
    out.append("enum TRLLossFixture {")
    out.append("    static let policyChosen: [Float] = " + swift_array(POLICY_CHOSEN))
    out.append("    static let policyRejected: [Float] = " + swift_array(POLICY_REJECTED))
    out.append("    static let referenceChosen: [Float] = " + swift_array(REFERENCE_CHOSEN))
    out.append("    static let referenceRejected: [Float] = " + swift_array(REFERENCE_REJECTED))
    out.append("    static let chosenTokens: [Int] = [" + ", ".join(map(str, CHOSEN_TOKENS)) + "]")
    out.append("    static let rejectedTokens: [Int] = [" + ", ".join(map(str, REJECTED_TOKENS)) + "]")
    out.append("    static let cases: [TRLLossCase] = [")
    all_pairs = list(range(len(POLICY_CHOSEN)))
    for name, loss_name, types_, weights, beta, smoothing, alpha, ref_free in CASES:
        loss, d_c, d_r, m = run(all_pairs, types_, weights, beta, smoothing, ref_free)
        singles = []
        if loss_name != "sft" and alpha == 0:
            singles = [run([i], types_, weights, beta, smoothing, ref_free)[0] for i in all_pairs]
        out.append("        TRLLossCase(")
        out.append("            name: %r, loss: %r, beta: %r, labelSmoothing: %r, rpoAlpha: %r, referenceFree: %s,"
                   % (name, loss_name, beta, smoothing, alpha, "true" if ref_free else "false"))
        out[-1] = out[-1].replace("'", '"')
        out.append("            pairLosses: %s," % swift_array(singles))
        out.append("            batchLoss: %r, dPolicyChosen: %s, dPolicyRejected: %s," % (loss, swift_array(d_c), swift_array(d_r)))
        out.append("            rewardsChosen: %r, rewardsRejected: %r, rewardsAccuracies: %r, rewardsMargins: %r,"
                   % (m["rewards/chosen"], m["rewards/rejected"], m["rewards/accuracies"], m["rewards/margins"]))
        out.append("            logpsChosen: %r, logpsRejected: %r)," % (m["logps/chosen"], m["logps/rejected"]))
    out.append("    ]")
    out.append("}")
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "LossTRLFixtureTests.swift")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
