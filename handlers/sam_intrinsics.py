"""CloudFormation intrinsic functions in their long form (``{"Ref": ...}``), so that the template
is plain data that ``yaml.safe_dump`` can write and tests can read."""

from __future__ import annotations

from typing import Any

NO_VALUE = {"Ref": "AWS::NoValue"}


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def if_(condition: str, then: Any, otherwise: Any = NO_VALUE) -> dict[str, Any]:
    return {"Fn::If": [condition, then, otherwise]}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def literal(text: str) -> str:
    """``text`` kept as written inside an ``Fn::Sub`` string."""
    return text.replace("${", "${!")
