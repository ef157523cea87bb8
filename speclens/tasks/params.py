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

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from speclens.config_messages import Vocabulary, format_errors
from speclens.errors import ConfigError
from speclens.spec.features import DEFAULT_SIGMA_SCALE

Kernel = Literal["gaussian", "cosine"]


def _opt(default: Any, doc: str, fix: str, cli: str | None = None) -> Any:
    """A field with its meaning (``doc``: CLI help, YAML comments) and the fix shown when a
    config sets it wrong (``{default}`` in it is the default); ``cli="text"``: the command
    line takes it as text that the field's validator parses (a list, or a word like auto)."""
    extra = {"fix": fix.format(default=default)} | ({"cli": cli} if cli else {})
    return Field(default, description=doc, json_schema_extra=extra)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number; {what}") from None


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
    sigma_scale: float | tuple[float, ...] = _opt(
        DEFAULT_SIGMA_SCALE,
        "Bandwidth = scale x median pairwise distance, where --sigma-x/-y are not given; "
        "several (0.25,0.5,1,2) sweep the bandwidths in one pass, one run each.",
        "set a number > 0 or a list of distinct numbers > 0 (default {default}: that fraction "
        "of the median distance)",
        cli="text",
    )
    rff_dim: int | Literal["auto"] = _opt(
        1000,
        "Random Fourier frequencies per Gaussian kernel (feature width 2 x rff_dim); auto: "
        "doubled from 500 on a row sample until the estimated error is under --rff-target.",
        "set a whole number of random frequencies > 0 or auto (default {default})",
        cli="text",
    )
    rff_target: Annotated[float, Field(gt=0, lt=1)] = _opt(
        0.05,
        "With --rff-dim auto: the estimated error of the leading eigenvalues to reach, as a "
        "fraction of their size.",
        "set a fraction between 0 and 1 (default {default}: 5%)",
    )
    rff_dim_max: PositiveInt = _opt(
        2000,
        "With --rff-dim auto: the most frequencies it may choose (each m x m state is "
        "(4 x rff_dim)^2 float64: 512 MB at 2000, 2 GB at 4000, three with the uncertainty).",
        "set a whole number of frequencies > 0 (default {default})",
    )
    exact_check: bool = _opt(
        False,
        "Also compute the exact n x n eigenvalues (at most 5,000 rows: a seeded subsample "
        "above) beside the random-feature ones on the same rows.",
        "use true or false",
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
    local_agreement: bool = _opt(
        True,
        "Also compute each sample's local agreement: the overlap of its nearest neighbours in "
        "X and in Y (exact up to 50,000 rows, approximate above; reads both embeddings into "
        "the flow's memory, so skip it for very large runs).",
        "use true or false",
    )
    neighbors: PositiveInt = _opt(
        10,
        "Nearest neighbours per sample in the local agreement.",
        "set a whole number of neighbours > 0 (default {default})",
    )
    map_points: NonNegativeInt = _opt(
        20000,
        "Samples placed on the run's 2-D map (UMAP of the mode scores; a seeded sample above "
        "this many rows; 0: no map).",
        "set a whole number of samples, 0 or more (default {default}; 0: no map)",
    )
    seed: NonNegativeInt = _opt(
        0,
        "Seed of the random frequencies, the bandwidth sample and the eigensolver's start.",
        "set a whole number, 0 or more",
    )
    solver: Literal["auto", "eigh", "lanczos", "mixed"] = _opt(
        "auto",
        "Eigensolver of the reduced problem: auto, eigh (full), lanczos (both ends) or mixed "
        "(float32 reduction, both ends refined in float64).",
        "use auto, eigh, lanczos or mixed",
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
        "Dataset shards per block of rows read at once (a map-reduce task folds several).",
        "set a whole number of shards per block > 0 (default {default})",
    )
    compare_device: str = _opt(
        "cpu",
        "Where the passes compute features and block products: cpu (BLAS SYRK), cuda, "
        "cuda:N, or auto (CUDA on workers that have it).",
        "use cpu, cuda, cuda:N or auto",
    )

    @field_validator("sigma_scale", mode="before")
    @classmethod
    def _scales(cls, value: Any) -> float | tuple[float, ...]:
        fix = "use numbers > 0, e.g. 0.25,0.5,1,2"
        if isinstance(value, str):
            value = [_number(t, fix) for t in value.split(",") if t.strip()]
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise ValueError(f"no bandwidth scale given; {fix}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{v!r} is not a number > 0; {fix}")
        if len(set(values)) < len(values):
            raise ValueError(f"{values} repeats a scale; give each bandwidth scale once")
        return float(values[0]) if len(values) == 1 else tuple(float(v) for v in values)

    @field_validator("compare_device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", text):
            raise ValueError(f"{value!r} is not a compute device; use cpu, cuda, cuda:N or auto")
        return text

    @field_validator("rff_dim", mode="before")
    @classmethod
    def _rff_dim(cls, value: Any) -> int | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{value!r} is not a whole number > 0 or auto; set a whole number of random "
                f"frequencies > 0, or auto"
            )
        return value

    @model_validator(mode="after")
    def _sweep_applies(self) -> CompareParams:
        if not self.sweeping:
            return self
        kernels = (self.kernel_x_used, self.kernel_y_used)
        if "gaussian" not in kernels:
            raise ValueError(
                "several sigma_scale values sweep Gaussian bandwidths, but both kernels are "
                "cosine; give one scale or use a gaussian kernel"
            )
        if self.sigma_x is not None or self.sigma_y is not None:
            raise ValueError(
                "several sigma_scale values sweep the median heuristic, but sigma_x or sigma_y "
                "fixes a bandwidth; remove sigma_x and sigma_y, or give one scale"
            )
        return self

    @property
    def scales(self) -> tuple[float, ...]:
        """The bandwidth scales: one for a plain run, several for a sweep."""
        s = self.sigma_scale
        return s if isinstance(s, tuple) else (s,)

    @property
    def sweeping(self) -> bool:
        return len(self.scales) > 1

    def sweep(self) -> list[CompareParams]:
        """One set of parameters per bandwidth scale (a plain run: itself)."""
        if not self.sweeping:
            return [self]
        return [self.model_copy(update={"sigma_scale": s}) for s in self.scales]

    def one_bandwidth(self, source: str = "align options") -> CompareParams:
        """Itself; a ConfigError (one line) for a sweep where one bandwidth is compared."""
        if self.sweeping:
            raise ConfigError(
                [
                    f"compare.sigma_scale: align compares before and after at one bandwidth, "
                    f"got {list(self.scales)}; give one scale (sweep with `speclens compare` "
                    f"first)"
                ],
                source,
            )
        return self

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
