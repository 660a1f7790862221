"""CloudFormation intrinsic functions in their long form (``{"Ref": ...}``), so that the template
is plain data that ``yaml.safe_dump`` can write and tests can read."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def if_(condition: str, then: Any, otherwise: Any = None) -> dict[str, Any]:
    """``Fn::If``; without ``otherwise``, AWS::NoValue (a fresh dict: a shared one is dumped as a YAML alias)."""
    return {"Fn::If": [condition, then, ref("AWS::NoValue") if otherwise is None else otherwise]}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def literal(text: str) -> str:
    """``text`` kept as written inside an ``Fn::Sub`` string."""
    return text.replace("${", "${!")
