"""Read template.yaml the way CloudFormation would, just enough to deploy it into the emulation.

Understands the short-form intrinsics the template uses (!Ref, !GetAtt, !Sub, !If, !Join,
!Split, !Equals) and resolves them against known names, so the emulation runs the very
resources, handlers, environment and state machine definition that ``sam deploy`` would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

INTRINSICS = {
    "!Ref": "Ref",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!If": "Fn::If",
    "!Join": "Fn::Join",
    "!Split": "Fn::Split",
    "!Equals": "Fn::Equals",
    "!Select": "Fn::Select",
    "!ImportValue": "Fn::ImportValue",
}


class CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short forms into their long forms."""


def _construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = INTRINSICS["!" + tag_suffix]
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CfnLoader.add_multi_constructor("!", _construct)


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
        return loaded


class Resolver:
    """Evaluates intrinsics given values for Refs, GetAtts and conditions."""

    def __init__(self, refs: dict[str, Any], attributes: dict[str, Any], conditions: dict[str, Any]) -> None:
        self.refs = refs
        self.attributes = attributes
        self.conditions = conditions

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.refs[arg]
        if key == "Fn::GetAtt":
            return self.attributes[".".join(arg)]
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub_value(m.group(1), extra)), text)
        if key == "Fn::If":
            name, if_true, if_false = arg
            return self.resolve(if_true if self.condition(name) else if_false)
        if key == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(str(v) for v in self.resolve(items))
        if key == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(delimiter)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return left == right
        return {key: self.resolve(arg)}

    def _sub_value(self, name: str, extra: dict[str, Any]) -> Any:
        if name in extra:
            return extra[name]
        if name in self.refs:
            return self.refs[name]
        return self.attributes[name]
