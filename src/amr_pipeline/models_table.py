"""The models of the paper, one row each: every pipeline and the trainer take their lists here.

Rows are in the paper's Table 2 order (the baselines, then VBPR and AMR). Per model:

- ``label``: its name in tables and figures;
- ``visual``: it scores with the image features c_i (and stores ``<model>.feature_projection``);
- ``trainer``: ``"bpr"`` (the BPR-family trainer, :mod:`amr_pipeline.recsys.train`) or
  ``"closed_form"`` (POP, MF-eALS: fitted without negative sampling);
- ``initialise_from`` / ``initial_tables``: the model whose tables it starts from and which of
  them (VBPR from MF-BPR's p_u and q_i, AMR from all of VBPR's: Algorithm 1, line 1; DUIF from
  MF-BPR's p_u);
- ``tuned``: it has a grid in the tuning protocol (4.1.4) and a ``<model>.settings`` entry;
- ``replicated``: its final fit is repeated with other seeds (``<model>.replicates``);
- ``attacked``: its image features are attacked at test time (Table 3, Figures 4-5).

Dataset names follow from the model name (``<model>.user_factors`` and so on); this table
changes none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

FACTOR_TABLES = ("user_factors", "item_factors", "feature_projection")
BPR = "bpr"
CLOSED_FORM = "closed_form"


@dataclass(frozen=True)
class Model:
    name: str
    label: str
    visual: bool
    trainer: str
    initialise_from: str | None = None
    initial_tables: tuple[str, ...] = FACTOR_TABLES
    tuned: bool = True
    replicated: bool = True
    attacked: bool = False


MODELS: tuple[Model, ...] = (
    Model("pop", "POP", visual=False, trainer=CLOSED_FORM, tuned=False, replicated=False),
    Model("mf_eals", "MF-eALS", visual=False, trainer=CLOSED_FORM),
    Model("mf_bpr", "MF-BPR", visual=False, trainer=BPR),
    Model("duif", "DUIF", visual=True, trainer=BPR, initialise_from="mf_bpr",
          initial_tables=("user_factors",)),
    Model("vbpr", "VBPR", visual=True, trainer=BPR, initialise_from="mf_bpr",
          initial_tables=("user_factors", "item_factors"), attacked=True),
    Model("amr", "AMR", visual=True, trainer=BPR, initialise_from="vbpr", attacked=True),
)
BY_NAME = {model.name: model for model in MODELS}

PAPER_MODELS = tuple(model.name for model in MODELS)
"""Every model, in Table 2 order."""
MODEL_LABELS = {model.name: model.label for model in MODELS}
BPR_MODELS = tuple(model.name for model in MODELS if model.trainer == BPR)
"""The models of the BPR-family trainer."""
TUNED_MODELS = tuple(model.name for model in sorted(
    (m for m in MODELS if m.tuned), key=lambda m: m.trainer != BPR))
"""The tuned models in the order they are tuned: the BPR family along its initialisation
chain (MF-BPR first), then the closed-form ones."""
ATTACKED_MODELS = tuple(model.name for model in MODELS if model.attacked)


def chain(name: str) -> tuple[str, ...]:
    """``name`` and the models it starts from, the first one first (AMR: MF-BPR, VBPR, AMR)."""
    models = [name]
    while BY_NAME[models[0]].initialise_from is not None:
        models.insert(0, BY_NAME[models[0]].initialise_from)
    return tuple(models)
