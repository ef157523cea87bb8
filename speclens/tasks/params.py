"""The parameters of a comparison, defined once.

:class:`CompareParams` is the one typed definition of every compare option: its defaults and
meanings drive the command-line options (``speclens compare``, ``audit``, ``align``,
``demo``), the audit config's ``compare:`` section and its error messages, the compare
deployment's parameters, and the compare flow and tasks, which receive an instance. An option
has one name everywhere (``--rff-dim`` on the command line, ``rff_dim`` in YAML, JSON and
Python). Invalid values are refused by :meth:`CompareParams.from_options` with one line per
problem (a :class:`~speclens.errors.ConfigError`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from speclens.config_messages import Vocabulary, format_errors
from speclens.errors import ConfigError
from speclens.spec.features import DEFAULT_SIGMA_SCALE

Kernel = Literal["gaussian", "cosine"]


def _opt(default: Any, doc: str, fix: str) -> Any:
    """A field with its meaning (``doc``: CLI help, YAML comments) and the fix shown when a
    config sets it wrong (``{default}`` in it is the default)."""
    return Field(default, description=doc, json_schema_extra={"fix": fix.format(default=default)})


class CompareParams(BaseModel):
    """How two embeddings are compared (see docs/design.md, "The mathematics")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kernel: Kernel = _opt(
        "gaussian",
        "Kernel of both embeddings: gaussian (random Fourier features) or cosine (exact).",
        "use gaussian or cosine",
    )
    kernel_x: Kernel | None = _opt(
        None,
        "Kernel of X when it differs from --kernel.",
        "use gaussian or cosine, or remove the key (default: compare.kernel)",
    )
    kernel_y: Kernel | None = _opt(
        None,
        "Kernel of Y when it differs from --kernel.",
        "use gaussian or cosine, or remove the key (default: compare.kernel)",
    )
    sigma_x: PositiveFloat | None = _opt(
        None,
        "Gaussian bandwidth of X (default: sigma_scale x the median pairwise distance).",
        "set a bandwidth > 0, or remove the key to use the median heuristic",
    )
    sigma_y: PositiveFloat | None = _opt(
        None,
        "Gaussian bandwidth of Y (default: sigma_scale x the median pairwise distance).",
        "set a bandwidth > 0, or remove the key to use the median heuristic",
    )
    sigma_scale: PositiveFloat = _opt(
        DEFAULT_SIGMA_SCALE,
        "Bandwidth = scale x median pairwise distance, where --sigma-x/-y are not given.",
        "set a number > 0 (default {default}: that fraction of the median distance)",
    )
    rff_dim: PositiveInt = _opt(
        1000,
        "Random Fourier frequencies per Gaussian kernel (feature width 2 x rff_dim).",
        "set a whole number of random frequencies > 0 (default {default})",
    )
    eta: PositiveFloat = _opt(
        1.0,
        "Weight of Y's kernel in K_X - eta K_Y.",
        "set a weight > 0 for the second kernel (default {default})",
    )
    n_modes: PositiveInt = _opt(
        5,
        "Modes reported at each end of the spectrum.",
        "set a whole number of modes per direction > 0 (default {default})",
    )
    members: PositiveInt = _opt(
        50,
        "Top samples stored per mode.",
        "set a whole number of top members per mode > 0 (default {default})",
    )
    seed: NonNegativeInt = _opt(
        0,
        "Seed of the random frequencies, the bandwidth sample and the eigensolver's start.",
        "set a whole number, 0 or more",
    )
    solver: Literal["auto", "eigh", "lanczos"] = _opt(
        "auto",
        "Eigensolver of the reduced problem: auto, eigh (full) or lanczos (both ends).",
        "use auto, eigh or lanczos",
    )
    dtype: Literal["float32", "float64"] = _opt(
        "float32",
        "Precision of the random features and block products (sums are float64).",
        "use float32 or float64",
    )
    uncertainty: bool = _opt(
        True,
        "Also estimate each mode's held-out value, interval, p-value and member stability (the "
        "Gram per half of the samples, a second draw of features in the scoring pass).",
        "use true or false",
    )
    confidence: Annotated[float, Field(gt=0, lt=1)] = _opt(
        0.9,
        "Level of the intervals (0.9: 90%).",
        "set a level between 0 and 1 (default {default}, a 90% interval)",
    )
    block_shards: PositiveInt = _opt(
        1,
        "Dataset shards per map-reduce task.",
        "set a whole number of shards per task > 0 (default {default})",
    )

    @property
    def kernel_x_used(self) -> str:
        """X's kernel: ``kernel_x`` when set, else ``kernel``."""
        return self.kernel_x or self.kernel

    @property
    def kernel_y_used(self) -> str:
        """Y's kernel: ``kernel_y`` when set, else ``kernel``."""
        return self.kernel_y or self.kernel

    @classmethod
    def vocabulary(cls) -> Vocabulary:
        """The keys of a ``compare:`` section and the fix for each (for config messages)."""
        fixes = {f"compare.{n}": f.json_schema_extra["fix"] for n, f in cls.model_fields.items()}
        return Vocabulary(fixes, {("compare",): list(cls.model_fields)})

    @classmethod
    def from_options(cls, options: dict | None = None, source: str = "compare options"):
        """Validate ``options`` (every option not given takes its default); raises
        ConfigError with one line per problem, keys written ``compare.<name>``."""
        try:
            return cls.model_validate(dict(options or {}))
        except ValidationError as exc:
            errors = [{**e, "loc": ("compare", *e["loc"])} for e in exc.errors()]
            raise ConfigError(format_errors(errors, cls.vocabulary()), source) from None

    def with_options(self, **options) -> CompareParams:
        """A copy with ``options`` changed, validated like :meth:`from_options`."""
        return self.from_options({**self.model_dump(exclude_unset=True), **options})
