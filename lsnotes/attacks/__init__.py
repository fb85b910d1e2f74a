"""Adversarial attacks used in the book, all batched, in [0, 1] pixel space, on CPU or CUDA.

Every attack here obeys the same contract, which the tests check on random models and inputs:

- it never changes the model: weights, their ``.grad`` and ``requires_grad`` flags and the
  train/eval mode are as they were afterwards (the model is run in eval mode *during* the attack,
  so batch-norm statistics are not updated by adversarial batches);
- its output lies in [0, 1] and, for the L∞ attacks, *exactly* inside the ε-ball in the
  input's floating-point type (bounds rounded outwards by ``x ± ε`` are nudged one ulp back in);
- its randomness comes from the ``generator`` argument (a fixed seed-0 generator when omitted),
  never from the global RNG — the AutoAttack-based attacks (:mod:`lsnotes.attacks.autoattack`) run inside ``torch.random.fork_rng`` because the original code re-seeds it;
- a success flag, where an attack returns one, means the returned example is misclassified with
  respect to the labels ``y`` (an example the model gets wrong already counts as a success);
- bad arguments raise ``ValueError`` naming the parameter before any work: ``x`` must be a
  non-empty float batch in [0, 1] of the model's dtype and input shape; labels (and targets) may
  have any integer dtype (they are converted to int64) and must lie in [0, K) for K outputs;
  L∞ budgets lie in [0, 1] and L2 budgets in [0, √D] (the diameter of the pixel box).

Step sizes follow Fu et al. (2020), Table 3: FGSM is one signed step of 2ε from x (clipped back
into the ball, so it coincides with the classic step of ε), PGD^k takes k steps of 2ε/k from a
uniform random start. The other settings we chose are stated in :data:`ATTACKS`.

Modules: :mod:`~lsnotes.attacks.base` (checks, projection, losses), :mod:`~lsnotes.attacks.gradient`,
:mod:`~lsnotes.attacks.minimal`, :mod:`~lsnotes.attacks.autoattack` (the original code) and
:mod:`~lsnotes.attacks.registry` (the attacks by name).
"""

from lsnotes.attacks.base import NORMS, LOSSES, seeded_generator, frozen_model, check_batch, check_fits, linf_bounds, project, margin, margin_loss, attack_loss, maximise_in_ball, predict, predict_logits, finite_gradient, finite_images, NonFiniteGradientWarning, NonFiniteImageWarning  # noqa: F401
from lsnotes.attacks.gradient import pgd, fgsm, bim, multitargeted, odi, tanh_linf  # noqa: F401
from lsnotes.attacks.minimal import deepfool, carlini_wagner_l2  # noqa: F401
from lsnotes.attacks.autoattack import AUTOATTACK_PARTS, autoattack, apgd_ce, square  # noqa: F401
from lsnotes.attacks.registry import AttackSpec, ATTACKS, run_attack, transfer  # noqa: F401
