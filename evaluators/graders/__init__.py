"""OpenAI's graders (string_check, text_similarity, score_model, python, multi) and evalctl's
`evalctl_task`, for the reinforcement fine-tuning jobs and /v1/fine_tuning/alpha/graders.

types.py     the grader objects as pydantic models; `parse_grader` checks one and names a bad field
template.py  {{ item.* }} / {{ sample.output_text }} rendering
text.py      string_check and the text_similarity metrics (rapidfuzz, sacrebleu, NLTK, rouge-score)
model.py     score_model: the judge's messages, parameters and score parsing
formula.py   the multi grader's calculate_output, evaluated on its syntax tree
sandbox.py   python graders in a limited child process
run.py       `grade_batch`: a grader over (sample, item) cases, with OpenAI's error flags
"""

from .run import ERROR_FLAGS, GradeContext, Outcome, error_object, grade_batch
from .sandbox import PythonLimits
from .types import GRADER_TYPES, GraderError, parse_grader, walk

__all__ = ["ERROR_FLAGS", "GRADER_TYPES", "GradeContext", "GraderError", "Outcome", "PythonLimits", "error_object",
           "grade_batch", "parse_grader", "walk"]
