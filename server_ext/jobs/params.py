"""Notebook parameters: what a ``parameters`` cell declares, and checking given values.

papermill's own inspection keeps a type only for annotations it can read: it drops
``x: typing.Union[int, str] = "auto"``, ``x: int | str = "auto"`` and call expressions
without a word, and it only warns about unknown names. So the parameters cell is parsed
here with ``ast`` (every simple assignment, its annotation, its default and its trailing
comment); papermill's inspection is merged in for its help text. A trailing comment
``# asset: datasets`` marks a parameter that takes an asset of that category.
"""

from __future__ import annotations

import ast
import io
import logging
import math
import re
import tokenize
from dataclasses import dataclass, field
from typing import Any

from ..logs.text import printable

log = logging.getLogger("notebench.jobs")

_ASSET = re.compile(r"\basset:\s*([A-Za-z_][\w-]*)")
_SCALARS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list",
            "dict": "dict", "tuple": "list", "List": "list", "Dict": "dict", "Tuple": "list",
            "Sequence": "list", "Mapping": "dict", "Any": "any", "object": "any",
            "None": "none", "NoneType": "none"}
_INT = re.compile(r"[+-]?\d+")


@dataclass
class Parameter:
    """One parameter of a notebook."""

    name: str
    types: list[str]
    annotation: str | None = None
    default: Any = None
    default_source: str | None = None
    has_default: bool = True
    default_is_literal: bool = True
    help: str = ""
    asset: str | None = None
    choices: list[Any] | None = None
    line: int = 0

    def describe(self) -> dict[str, Any]:
        """The JSON shape served by the discovery routes."""
        return {
            "name": self.name,
            "type": self.annotation or ("|".join(self.types) if self.types else "any"),
            "types": self.types,
            "default": _jsonable(self.default) if self.default_is_literal else None,
            "default_source": self.default_source,
            "required": not self.has_default,
            "help": self.help,
            "asset": self.asset,
            "choices": self.choices,
        }


@dataclass
class ParametersCell:
    """The parameters of a notebook and where its parameters cell is."""

    index: int | None
    parameters: list[Parameter] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters}


class ParameterError(ValueError):
    """Given parameters do not fit the notebook: ``problems`` says which and why."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['name']}: {p['message']}" for p in problems))
        self.problems = problems


# -- reading a notebook ------------------------------------------------------------------


def parameters_cell_index(nb: dict[str, Any]) -> int | None:
    """The index of the first cell tagged ``parameters`` (papermill's rule)."""
    for index, cell in enumerate(nb.get("cells") or []):
        if "parameters" in ((cell.get("metadata") or {}).get("tags") or []):
            return index
    return None


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source") or ""
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_parameters(nb: dict[str, Any]) -> ParametersCell:
    """The parameters of a notebook (a JSON dict), parsed and merged with papermill's view."""
    index = parameters_cell_index(nb)
    if index is None:
        return ParametersCell(None)
    source = cell_source(nb["cells"][index])
    result = ParametersCell(index)
    result.parameters, result.problems = parse_parameters(source)
    for name, help_text in _papermill_help(nb, source).items():
        param = result.by_name().get(name)
        if param is not None and not param.help and help_text:
            param.help = help_text
    return result


def _papermill_help(nb: dict[str, Any], source: str) -> dict[str, str]:
    """papermill's inspection of the cell: name -> help (empty when papermill is absent)."""
    try:
        from papermill.translators import papermill_translators
    except ImportError:  # pragma: no cover - papermill is a dependency
        return {}
    kernel = ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name") or "python3"
    language = ((nb.get("metadata") or {}).get("kernelspec") or {}).get("language") or "python"
    try:
        translator = papermill_translators.find_translator(kernel, language)
        found = translator.inspect(_CellView(source))
    except Exception as exc:  # papermill's inspection is advisory here
        log.debug("papermill could not inspect the parameters cell: %s", printable(exc))
        return {}
    return {p.name: p.help for p in found}


class _CellView(dict):
    """What papermill's translators read of a cell (``cell.source``)."""

    def __init__(self, source: str) -> None:
        super().__init__(source=source, cell_type="code")
        self.source = source


def parse_parameters(source: str) -> tuple[list[Parameter], list[str]]:
    """Every top-level ``name = value`` / ``name: T = value`` of a parameters cell."""
    problems: list[str] = []
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [], [f"the parameters cell is not valid Python: {exc.msg} (line {exc.lineno})"]
    comments = _comments(source)
    params: list[Parameter] = []
    seen: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            annotation = ast.get_source_segment(source, node.annotation) or ast.unparse(
                node.annotation)
            types, choices = annotation_types(node.annotation)
            value_node = node.value
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)):
            name = node.targets[0].id
            annotation = None
            types, choices = [], None
            value_node = node.value
        else:
            continue
        comment = comments.get(node.end_lineno or node.lineno) or comments.get(node.lineno, "")
        asset_match = _ASSET.search(comment)
        help_text = _ASSET.sub("", comment).strip(" ;,-") if asset_match else comment
        param = Parameter(name=name, types=types, annotation=annotation, help=help_text,
                          asset=asset_match.group(1) if asset_match else None,
                          choices=choices, line=node.lineno)
        if value_node is None:
            param.has_default = False
            param.default_source = None
        else:
            param.default_source = ast.get_source_segment(source, value_node) or ast.unparse(
                value_node)
            try:
                param.default = ast.literal_eval(value_node)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                param.default_is_literal = False
        if not param.types:
            param.types = _types_of_default(param)
        if param.asset and not set(param.types) & {"str", "any"}:
            problems.append(f"{name}: an asset parameter must take a str")
        if name in seen:
            params[seen[name]] = param  # the last assignment wins, as when the cell runs
        else:
            seen[name] = len(params)
            params.append(param)
    return params, problems


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return found


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr  # typing.Union -> Union
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return ""


def annotation_types(node: ast.AST) -> tuple[list[str], list[Any] | None]:
    """Type names an annotation admits, in its order, and Literal choices if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "int" (a string)
        try:
            return annotation_types(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return ["any"], None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, lc = annotation_types(node.left)
        right, rc = annotation_types(node.right)
        choices = (lc or []) + (rc or []) if (lc or rc) else None
        return _unique(left + right), choices
    if isinstance(node, ast.Subscript):
        head = _dotted(node.value)
        inner = node.slice
        elements = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if head == "Union":
            types: list[str] = []
            choices: list[Any] | None = None
            for element in elements:
                t, c = annotation_types(element)
                types += t
                if c:
                    choices = (choices or []) + c
            return _unique(types), choices
        if head == "Optional":
            t, c = annotation_types(elements[0])
            return _unique([*t, "none"]), c
        if head == "Literal":
            values = []
            for element in elements:
                try:
                    values.append(ast.literal_eval(element))
                except ValueError:
                    return ["any"], None
            return ["literal"], values
        name = _SCALARS.get(head)
        return ([name] if name else ["any"]), None
    name = _SCALARS.get(_dotted(node))
    return ([name] if name else ["any"]), None


def _unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _types_of_default(param: Parameter) -> list[str]:
    if not param.default_is_literal or not param.has_default:
        return ["any"]
    value = param.default
    if isinstance(value, bool):
        return ["bool"]
    if isinstance(value, int):
        return ["int"]
    if isinstance(value, float):
        return ["float"]
    if isinstance(value, str):
        return ["str"]
    if isinstance(value, (list, tuple)):
        return ["list"]
    if isinstance(value, dict):
        return ["dict"]
    return ["any"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, bytes, complex)):
        return repr(value)
    return value


# -- checking given values -----------------------------------------------------------------


_MISSING = object()


def _strict(kind: str, value: Any, choices: list[Any] | None) -> Any:
    """The value if it already is of ``kind`` (JSON types), else _MISSING."""
    if kind == "any":
        return value
    if kind == "none":
        return None if value is None else _MISSING
    if kind == "bool":
        return value if isinstance(value, bool) else _MISSING
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISSING
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _MISSING
    if kind == "str":
        return value if isinstance(value, str) else _MISSING
    if kind == "list":
        return list(value) if isinstance(value, (list, tuple)) else _MISSING
    if kind == "dict":
        return value if isinstance(value, dict) else _MISSING
    if kind == "literal":
        return value if choices is not None and value in choices else _MISSING
    return _MISSING


def _lenient(kind: str, value: Any) -> Any:
    """Conversions a form field needs: ``"3"`` for an int, ``3.0`` for an int, ``"true"``."""
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value.strip())
    if kind == "float" and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return _MISSING
    if kind == "bool" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _MISSING


def coerce(param: Parameter, value: Any) -> Any:
    """The value as the parameter's type (ValueError with the reason otherwise)."""
    for kind in param.types:
        result = _strict(kind, value, param.choices)
        if result is not _MISSING:
            return result
    for kind in param.types:
        result = _lenient(kind, value)
        if result is not _MISSING:
            return result
    expected = " or ".join(param.types)
    if param.choices is not None:
        expected = f"one of {param.choices!r}"
    raise ValueError(f"expected {expected}, got {type(value).__name__} {value!r}"[:300])


def check_values(cell: ParametersCell, given: dict[str, Any]) -> dict[str, Any]:
    """Given values checked and coerced; ParameterError lists every problem at once."""
    problems: list[dict[str, str]] = []
    if cell.index is None and given:
        raise ParameterError([{"name": name, "message": "the notebook has no parameters "
                               "cell (a cell tagged 'parameters')"} for name in given])
    known = cell.by_name()
    checked: dict[str, Any] = {}
    for name, value in given.items():
        param = known.get(name)
        if param is None:
            hint = ", ".join(sorted(known)) or "none"
            problems.append({"name": name, "message": f"unknown parameter (known: {hint})"})
            continue
        try:
            checked[name] = coerce(param, value)
        except ValueError as exc:
            problems.append({"name": name, "message": str(exc)})
    for param in cell.parameters:
        if not param.has_default and param.name not in given:
            problems.append({"name": param.name, "message": "required (it has no default)"})
    if problems:
        raise ParameterError(problems)
    return checked
