"""Each paper's set-ups, and the quick profile's one CPU-sized setting, as data.

Profiles
--------
``quick`` is one CPU-sized setting that every chapter shares (Fashion-MNIST subset, a four-conv
CNN; the whole book in minutes). ``full`` is each paper's own setting, on a GPU:

- Goibert & Dohmatob (2019) -- ``training_with_ls``, ``classic_attacks``: their five set-ups
  (MNIST Linear, MNIST LeNet, CIFAR-10 LeNet, CIFAR-10 ResNet-18, SVHN LeNet), ALS/SLS/BLS/SBLS
  at three α each, the normal classifier and FGSM adversarial training as they define it.
- Fu et al. (2020) -- ``gradient_masking``: CIFAR-10, WRN-34-10, ε = 8/255, Szegedy LS over
  their α sweep (0.1 … 0.9; "the LS model" is α = 0.9), PGD-AT (Madry) and TRADES baselines.
- Yu et al. (2024) -- ``soft_labels_at``: CIFAR-10 ResNet-18, 200 epochs, PGD-10 at 8/255 with
  step 2/255, AT vs AT+SGLR and TRADES vs TRADES+SGLR, best and last checkpoints.

Where a paper is silent (epochs, optimiser, the α and ε values Goibert et al.'s rendering lost),
the :class:`Setting` says what we chose in its ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from lsnotes.losses import LS_METHODS


@dataclass(frozen=True)
class Setting:
    """What one set-up trains and attacks: one dataset/model pair, its budgets and its grids.

    ``adversarial_overrides`` maps an adversarial mode to :class:`TrainConfig` fields that mode
    trains with instead of the natural ones (e.g. Madry's weight decay); ``notes`` says where the
    setting departs from, or fills a silence of, its paper.
    """

    dataset: str
    model: str
    epochs: int
    train_size: int | None
    test_size: int | None
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    eps: float                    # the L∞ budget the chapter's attacks use (pixel scale)
    eps_grid: tuple[float, ...]   # for ε sweeps and sliders
    alpha_grid: tuple[float, ...] # smoothing strengths trained (the α slider snaps to these)
    eval_size: int                # test examples every attack is scored on
    at_steps: int                 # inner PGD steps for adversarial training
    at_epochs: int
    paper: str                    # where the setting comes from
    name: str = "quick"           # unique among all settings; labels the cache plan
    title: str = "Fashion-MNIST, four-conv CNN"
    at_step_size: float | None = None   # None: the trainer's 2.5·ε / steps
    methods: tuple[str, ...] = LS_METHODS    # the LS variants trained on ``alpha_grid``
    ls_alpha: float = 0.9                    # "the LS model" of the gradient-masking chapter
    bls_temperatures: tuple[float, ...] = (0.1, 10.0)  # extra BLS temperatures at the middle α
    keep_best: bool = False       # keep the best-by-held-out-robust-accuracy weights as well
    adversarial_overrides: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def mid_alpha(self) -> float:
        return self.alpha_grid[len(self.alpha_grid) // 2]


QUICK = Setting(
    # Fashion-MNIST and a four-conv CNN (Carlini & Wagner's MNIST network): the smallest setting
    # where LS visibly changes FGSM/PGD accuracy on CPU (see the training chapter for what was
    # measured). ε = 0.1 is the usual Fashion-MNIST budget; at 0.03 plain CE already kept ~2/3 of
    # its accuracy under PGD-20 in this setting, leaving nothing for LS to change.
    dataset="fashion-mnist", model="cnn4", epochs=4, train_size=4000, test_size=500,
    batch_size=128, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="onecycle", eps=0.1,
    eps_grid=(0.0, 0.025, 0.05, 0.1, 0.15, 0.2), alpha_grid=(0.1, 0.5, 0.9), eval_size=500,
    at_steps=3, at_epochs=4, paper="CPU-sized stand-in",
    notes=("one CPU-sized setting shared by every chapter, not any paper's",))

_GOIBERT_SILENT = ("Goibert & Dohmatob give no epochs, optimiser or schedule, and the rendering "
                   "of their paper lost its α and ε values: the α grid (three values per method, "
                   "as in their tables), ε, epochs and optimiser here are ours")
_GOIBERT_COMMON = dict(
    batch_size=128, alpha_grid=(0.1, 0.5, 0.9), eval_size=1000, at_steps=1,
    methods=("sls", "als", "bls", "sbls"),
    paper="Goibert & Dohmatob (2019)")
_MNIST = dict(dataset="mnist", train_size=None, test_size=1000, optimizer="adam", lr=1e-3,
              weight_decay=0.0, schedule="onecycle", eps=0.1,
              eps_grid=(0.0, 0.05, 0.1, 0.2, 0.3))
_COLOUR = dict(train_size=None, test_size=1000, eps=8 / 255,
               eps_grid=(0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255))
_SMALL_NET = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="onecycle")
_SGD = dict(optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="piecewise")

GOIBERT = (
    Setting(name="goibert-mnist-linear", title="MNIST, linear", model="linear", epochs=20,
            at_epochs=20, **_MNIST, **_GOIBERT_COMMON,
            notes=(_GOIBERT_SILENT, "20 epochs of Adam (lr 1e-3, one-cycle); ε = 0.1")),
    Setting(name="goibert-mnist-lenet", title="MNIST, LeNet", model="lenet", epochs=20,
            at_epochs=20, **_MNIST, **_GOIBERT_COMMON,
            notes=(_GOIBERT_SILENT, "20 epochs of Adam (lr 1e-3, one-cycle); ε = 0.1")),
    Setting(name="goibert-cifar10-lenet", title="CIFAR-10, LeNet", dataset="cifar10",
            model="lenet", epochs=50, at_epochs=50, **_COLOUR, **_SMALL_NET, **_GOIBERT_COMMON,
            notes=(_GOIBERT_SILENT, "50 epochs of Adam (lr 1e-3, one-cycle), crop+flip; "
                   "ε = 8/255")),
    Setting(name="goibert-cifar10-resnet18", title="CIFAR-10, ResNet-18", dataset="cifar10",
            model="resnet18", epochs=100, at_epochs=100, **_COLOUR, **_SGD, **_GOIBERT_COMMON,
            notes=(_GOIBERT_SILENT, "100 epochs of SGD (lr 0.1, momentum 0.9, weight decay "
                   "5e-4, ÷10 at 50 % and 75 %), crop+flip; ε = 8/255")),
    Setting(name="goibert-svhn-lenet", title="SVHN, LeNet", dataset="svhn", model="lenet",
            epochs=30, at_epochs=30, **_COLOUR, **_SMALL_NET, **_GOIBERT_COMMON,
            notes=(_GOIBERT_SILENT, "30 epochs of Adam (lr 1e-3, one-cycle), crop (no flip: "
                   "digits); ε = 8/255")),
)

FU = Setting(
    name="fu-cifar10-wrn34-10", title="CIFAR-10, WideResNet-34-10", dataset="cifar10",
    model="wrn34_10", epochs=100, train_size=None, test_size=1000, batch_size=128, **_SGD,
    eps=8 / 255, eps_grid=(0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255),
    alpha_grid=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), eval_size=1000,
    at_steps=10, at_epochs=205, at_step_size=2 / 255, methods=("szegedy",), ls_alpha=0.9,
    bls_temperatures=(), paper="Fu et al. (2020), §3.1",
    adversarial_overrides={
        # Madry et al.'s CIFAR-10 configuration: 80k steps of batch 128 (≈ 205 epochs), lr 0.1
        # ÷10 at 40k and 60k steps (= our piecewise schedule), weight decay 2e-4, PGD-10 step 2/255.
        "pgd": dict(weight_decay=2e-4),
        # Zhang et al.'s TRADES script: 80 epochs, weight decay 2e-4, 10 steps of 0.007, β = 6.
        "trades": dict(epochs=80, weight_decay=2e-4, attack_step_size=0.007, trades_beta=6.0),
    },
    notes=("Fu et al. train their LS models without saying how: 100 epochs of SGD (lr 0.1, "
           "momentum 0.9, weight decay 5e-4, ÷10 at 50 % and 75 %) is ours",
           "PGD-AT follows Madry et al.'s CIFAR-10 configuration (≈ 205 epochs, PGD-10 of "
           "step 2/255, weight decay 2e-4, lr ÷10 at 50 % and 75 %)",
           "TRADES follows Zhang et al.'s script (80 epochs, 10 steps of 0.007, β = 6, weight "
           "decay 2e-4) at ε = 8/255 (theirs: 0.031), except its schedule: ours drops the lr ÷10 "
           "at 50 % and 75 %, theirs once at epoch 75",
           "the held-out monitor scores 1000 test images with PGD-10 after every epoch"))

YU = Setting(
    name="yu-cifar10-resnet18", title="CIFAR-10, ResNet-18", dataset="cifar10",
    model="resnet18", epochs=200, train_size=None, test_size=1000, batch_size=128, **_SGD,
    eps=8 / 255, eps_grid=(0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255, 16 / 255),
    alpha_grid=(0.9,), eval_size=1000, at_steps=10, at_epochs=200, at_step_size=2 / 255,
    methods=(), bls_temperatures=(), keep_best=True,
    paper="Yu et al. (2024), the authors' code (devicerxx/SGLS)",
    notes=("as in the authors' script: 200 epochs of SGD at lr 0.1 with drops at epochs 100 and "
           "150, batch 128, PGD-10 at 8/255 with step 2/255, refinement from epoch 91 (their "
           "es = 90), label momentum 0.9",
           "our choices, not stated in the text we have of their setting: SGD momentum 0.9, "
           "weight decay 5e-4, a drop by ÷10",
           "TRADES: β = 6 and the same PGD steps are our choice; TRADES+SGLR is our reading of their "
           "method (the released code has no TRADES+SGLR source): the refined soft label "
           "replaces the one-hot label in TRADES's clean term",
           "best checkpoint: the epoch with the highest held-out PGD-10 accuracy on 1000 test "
           "images (the authors select on their whole test set)"))

#: A profile's default setting: what :func:`setting` returns when no name is given.
SETTINGS: dict[str, Setting] = {"quick": QUICK, "full": FU}

PAPERS: dict[str, tuple[Setting, ...]] = {"goibert": GOIBERT, "fu": (FU,), "yu": (YU,)}
PAPER_TITLES = {"goibert": "Goibert & Dohmatob (2019)", "fu": "Fu et al. (2020)",
                "yu": "Yu et al. (2024)"}
