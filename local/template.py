"""Reading template.yaml, so the local stack runs what deploys.

`load_template` understands CloudFormation's short tags (!Ref, !Sub, ...). `TemplateResolver`
evaluates the intrinsic functions the template uses against local names: parameters take their
defaults (or local overrides), resources take the physical names the local stack gives them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns short tags into their long JSON forms."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CloudFormationLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a template")
    return document


class _NoValue(str):
    """AWS::NoValue: equal to "" where a value is read, and dropped from the list or mapping that holds it,
    as CloudFormation removes the property or list item."""


NO_VALUE: Any = _NoValue("")


class UnresolvableValue(ValueError):
    """An intrinsic function or reference the local stack cannot evaluate."""


@dataclass
class TemplateResolver:
    template: dict[str, Any]
    stack_name: str = "s3-upscale-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    # Resource logical id -> {"Ref": physical id, "Arn": ..., other attributes}
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    get_att_fallback: Callable[[str, str], str] | None = None

    def parameter(self, name: str) -> str:
        if name in self.parameter_overrides:
            return self.parameter_overrides[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None:
            raise UnresolvableValue(f"unknown parameter {name}")
        if "Default" not in spec:
            raise UnresolvableValue(f"parameter {name} has no default and no local value")
        return str(spec["Default"])

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [resolved for item in value if (resolved := self.resolve(item)) is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), *_ = value.items()
            handler = self._functions.get(function)
            if handler is not None:
                return handler(self, argument)
        return {key: resolved for key, item in value.items() if (resolved := self.resolve(item)) is not NO_VALUE}

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/"
            "10ca1000-0000-4000-8000-000000000000",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}) or name in self.parameter_overrides:
            return self.parameter(name)
        if name in self.resources:
            return self.resources[name]["Ref"]
        raise UnresolvableValue(f"no local value for !Ref {name}")

    def _get_att(self, argument: list[str] | str) -> str:
        logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        known = self.resources.get(logical_id, {})
        if attribute in known:
            return known[attribute]
        if self.get_att_fallback is not None:
            return self.get_att_fallback(logical_id, attribute)
        raise UnresolvableValue(f"no local value for !GetAtt {logical_id}.{attribute}")

    def _sub(self, argument: str | list[Any]) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self._get_att(name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    _functions: ClassVar[Mapping[str, Callable[[TemplateResolver, Any], Any]]] = {
        "Ref": lambda self, arg: self._ref(arg),
        "Fn::GetAtt": lambda self, arg: self._get_att(arg),
        "Fn::Sub": lambda self, arg: self._sub(arg),
        "Fn::Join": lambda self, arg: str(arg[0]).join(str(self.resolve(item)) for item in self.resolve(arg[1])),
        "Fn::If": lambda self, arg: self._if(arg),
        "Fn::Equals": lambda self, arg: str(self.resolve(arg[0])) == str(self.resolve(arg[1])),
        "Fn::Not": lambda self, arg: not self.resolve(arg[0]),
        "Fn::And": lambda self, arg: all(self.resolve(item) for item in arg),
        "Fn::Or": lambda self, arg: any(self.resolve(item) for item in arg),
        "Fn::Select": lambda self, arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
        "Fn::Split": lambda self, arg: str(self.resolve(arg[1])).split(arg[0]),
        "Condition": lambda self, arg: self.condition(arg),
    }


@dataclass(frozen=True)
class FunctionSpec:
    """What the template says about one function: where its code is and how it is configured."""

    logical_id: str
    code_uri: str
    handler: str
    timeout_seconds: int
    environment: dict[str, Any]
    events: dict[str, Any]

    @property
    def module_file(self) -> Path:
        module, _ = self.handler.rsplit(".", 1)
        return TEMPLATE_PATH.parent / self.code_uri / f"{module.replace('.', '/')}.py"

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def function_specs(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function, with Globals merged in (environment unresolved)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    specs = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = {**globals_, **resource.get("Properties", {})}
        environment = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
        }
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=str(properties["CodeUri"]),
            handler=str(properties["Handler"]),
            timeout_seconds=int(properties.get("Timeout", 3)),
            environment=environment,
            events=resource.get("Properties", {}).get("Events", {}),
        )
    return specs


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


# ---- the environment a deployed function gets ----------------------------------------------------

_PLACEHOLDER_SERVICES = {
    "AWS::SQS::Queue": "sqs",
    "AWS::Serverless::Function": "lambda",
    "AWS::Lambda::Function": "lambda",
    "AWS::IAM::Role": "iam",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::S3::Bucket": "s3",
    "AWS::SecretsManager::Secret": "secretsmanager",
    "AWS::Events::EventBus": "events",
    "AWS::SNS::Topic": "sns",
}


def placeholder_resources(
    template: dict[str, Any], region: str = "us-east-1", account_id: str = "123456789012"
) -> dict[str, dict[str, str]]:
    """A Ref and an Arn for every resource, shaped as CloudFormation returns them for its type, so
    that a function's environment resolves as it would in a deployed stack (with made-up names)."""
    resources: dict[str, dict[str, str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        resource_type = resource.get("Type", "")
        service = _PLACEHOLDER_SERVICES.get(resource_type, "cloudformation")
        name = logical_id.lower() if service == "s3" else logical_id
        ref, arn = name, f"arn:aws:{service}:{region}:{account_id}:{name}"
        if service == "sqs":
            ref = f"https://sqs.{region}.amazonaws.com/{account_id}/{name}"
        elif service == "lambda":
            arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        elif service == "iam":
            arn = f"arn:aws:iam::{account_id}:role/{name}"
        elif service == "dynamodb":
            arn = f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
        elif service == "s3":
            arn = f"arn:aws:s3:::{name}"
        elif service == "secretsmanager":
            ref = arn = f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-AbCdEf"
        resources[logical_id] = {"Ref": ref, "Arn": arn}
    return resources


def deployed_environment(template: dict[str, Any], function: str, region: str = "us-east-1") -> dict[str, str]:
    """The environment `function` runs with when the template deploys with its defaults: the
    variables the template sets, and those Lambda's runtime adds (region, placeholder credentials)."""
    resolver = TemplateResolver(
        template, stack_name="check", region=region, resources=placeholder_resources(template, region)
    )
    environment = resolver.resolve(function_specs(template)[function].environment)
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "placeholder",
        "AWS_SECRET_ACCESS_KEY": "placeholder",
        "AWS_SESSION_TOKEN": "placeholder",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        **{key: str(value) for key, value in environment.items()},
    }


if __name__ == "__main__":
    # python -m local.template environment FUNCTION: KEY=VALUE lines, one per variable, for importing
    # a built handler as Lambda would (scripts/validate)
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "environment":
        sys.exit("usage: python -m local.template environment FUNCTION_LOGICAL_ID")
    for key, value in deployed_environment(load_template(), sys.argv[2]).items():
        print(f"{key}={value}")
