"""OpenAI's grader objects (openai-python `types/graders/*`) as pydantic models, plus evalctl's
`evalctl_task` grader. Parsing a grader checks everything that can be checked before a sample
exists (templates' namespaces, the formula, the task and scorer names, the score range), so a
bad grader is a 400 naming its field, not a zero reward at training time."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .formula import FormulaError, parse_formula
from .template import TemplateError, check_template

SIMILARITY_METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3",
                      "rouge_4", "rouge_5", "rouge_l")
MAX_PYTHON_SOURCE = 256 * 1024  # OpenAI's limit on a python grader's source


class GraderError(ValueError):
    """A grader that cannot run; `param` names the field (`grader.operation`, `grader.graders.x.model`)."""

    def __init__(self, message: str, param: str | None = "grader"):
        super().__init__(message)
        self.message, self.param = message, param


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)


def _template(value: str) -> str:
    try:
        check_template(value)
    except TemplateError as e:
        raise ValueError(str(e)) from None
    return value


class StringCheckGrader(_Grader):
    type: Literal["string_check"]
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]

    _check = field_validator("input", "reference")(_template)


class TextSimilarityGrader(_Grader):
    type: Literal["text_similarity"]
    input: str
    reference: str
    evaluation_metric: Literal[SIMILARITY_METRICS]  # type: ignore[valid-type]

    _check = field_validator("input", "reference")(_template)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["input_text", "output_text"]
    text: str

    _check = field_validator("text")(_template)


class ScoreModelInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system", "developer"]
    content: str | ContentPart | list[str | ContentPart]
    type: Literal["message"] | None = None

    @field_validator("content")
    @classmethod
    def _templates(cls, v):
        for part in v if isinstance(v, list) else [v]:
            if isinstance(part, str):
                _template(part)
        return v


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_completions_tokens: int | None = Field(None, ge=1)
    reasoning_effort: str | None = None
    seed: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)


class ScoreModelGrader(_Grader):
    type: Literal["score_model"]
    model: str = Field(min_length=1, description="A model served by this gateway (base, alias or adapter).")
    input: list[ScoreModelInput] = Field(min_length=1)
    range: list[float] | None = None
    sampling_params: SamplingParams | None = None

    @field_validator("range")
    @classmethod
    def _range(cls, v):
        if v is not None and (len(v) != 2 or not v[0] < v[1]):
            raise ValueError("range needs two numbers [low, high] with low < high")
        return v

    @property
    def bounds(self) -> tuple[float, float]:
        return tuple(self.range) if self.range else (0.0, 1.0)


class PythonGrader(_Grader):
    type: Literal["python"]
    source: str = Field(min_length=1, max_length=MAX_PYTHON_SOURCE)
    image_tag: str | None = Field(None, description="Accepted for OpenAI compatibility; the server's own "
                                  "Python runs the grader.")

    @field_validator("source")
    @classmethod
    def _defines_grade(cls, v):
        import ast

        try:
            tree = ast.parse(v)
        except SyntaxError as e:
            raise ValueError(f"source does not parse: {e.msg} (line {e.lineno})") from None
        if not any(isinstance(n, ast.FunctionDef) and n.name == "grade" for n in tree.body):
            raise ValueError("source must define `def grade(sample, item) -> float`")
        return v


class EvalctlTaskGrader(_Grader):
    """evalctl extension: an evalctl task's scorer as the grader. The scorer reads the sample's
    output text as its completion and the item's fields as its columns (gsm8k's `answer`)."""

    type: Literal["evalctl_task"]
    task: str = Field(description="A task of `evalctl tasks` (gsm8k, gsm8k_cot, ...).")
    scorer: str | None = Field(None, description="One of the task's scorers (default: its primary reward).")

    @field_validator("task")
    @classmethod
    def _known_task(cls, v):
        from ..registry import TASKS, UnknownName

        try:
            TASKS.get(v)
        except UnknownName as e:
            raise ValueError(e.message) from None
        return v

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, v, info: ValidationInfo):
        from ..registry import TASKS

        task = info.data.get("task")
        if v is not None and task is not None and v not in TASKS.get(task).scorers:
            raise ValueError(f"scorer {v!r} is not one of {task}'s: {', '.join(TASKS.get(task).scorers)}")
        return v


LeafGrader = Annotated[Union[StringCheckGrader, TextSimilarityGrader, ScoreModelGrader, PythonGrader,
                             EvalctlTaskGrader], Field(discriminator="type")]


class MultiGrader(_Grader):
    type: Literal["multi"]
    graders: dict[str, LeafGrader] = Field(min_length=1)
    calculate_output: str = Field(min_length=1, max_length=2000)

    @field_validator("calculate_output")
    @classmethod
    def _formula(cls, v, info: ValidationInfo):
        try:
            parse_formula(v, set(info.data.get("graders") or {}))
        except FormulaError as e:
            raise ValueError(str(e)) from None
        return v


AnyGrader = Annotated[Union[StringCheckGrader, TextSimilarityGrader, ScoreModelGrader, PythonGrader,
                            EvalctlTaskGrader, MultiGrader], Field(discriminator="type")]
GRADER_TYPES = ("string_check", "text_similarity", "score_model", "python", "evalctl_task", "multi")


_TAGS = {"str", "int", "float", "list", "dict", "ContentPart"}


class _Holder(BaseModel):
    grader: AnyGrader


def _param(loc: tuple, prefix: str) -> str:
    """pydantic's loc as the request's path: the union's type tags dropped (grader.operation)."""
    out = prefix
    for i, p in enumerate(loc[1:], start=1):
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in GRADER_TYPES and loc[i - 1] != "graders":
            continue
        elif p in _TAGS or not str(p).replace("_", "a").isalnum():  # union members: str, list[...], ...
            continue
        else:
            out += f".{p}"
    return out


def parse_grader(data, prefix: str = "grader"):
    """A grader object from its JSON; a GraderError names the bad field under `prefix`."""
    if not isinstance(data, dict):
        raise GraderError("a grader must be a JSON object with a `type`", prefix)
    try:
        return _Holder(grader=data).grader
    except ValidationError as e:
        # a union reports every member's failure; the deepest one is about what was meant
        err = max(e.errors(), key=lambda x: len(x["loc"]))
        param = _param(tuple(err["loc"]), prefix)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
            msg = f"unknown grader type; use one of {', '.join(GRADER_TYPES)}"
            param = f"{param}.type"
        raise GraderError(f"{param}: {msg}", param) from None


def walk(grader, prefix: str = "grader") -> list[tuple[str, object]]:
    """(param path, grader) for a grader and, in a multi grader, each named sub-grader."""
    if isinstance(grader, MultiGrader):
        return [(prefix, grader), *((f"{prefix}.graders.{k}", g) for k, g in grader.graders.items())]
    return [(prefix, grader)]
