#!/usr/bin/env python3
"""Checks what the generic validators cannot know about crypto-etl's deploy artifacts.

Run by scripts/validate-deploy with the venv's Python (it needs cfn-lint's template decoder).

1. The contract between the state machines and the crypto-etl Lambda handler: every Task invokes
   the one function through `lambda:invoke` with the literal `stage` and exactly the fields that
   stage reads, takes the function's returned object as its output, retries only
   `CryptoEtl.Transient` and Lambda's own service errors (bounded, with backoff and jitter), and
   sends everything else to a Fail state that carries the error and its cause. The `${...}`
   placeholders of each definition are exactly the template's DefinitionSubstitutions.
2. The template's rules: nothing secret is a parameter or an environment variable, and no IAM
   statement grants a wildcard action or a "*" resource (except the log delivery actions, which
   accept nothing else).
3. With --derived-out PATH: writes the template as plain CloudFormation (the SAM resources spelled
   as the Lambda, Step Functions and EventBridge resources they stand for, the ASL inlined) so
   that cfn-lint also runs the checks it skips on SAM templates (IAM action names, runtimes, the
   state machine definition schema, the schedule rule).

Exits 1 with one line per problem, or prints what it checked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from cfnlint.decode import decode

# --- the handler's contract (keep in step with statemachine/README.md) -----------------------

FUNCTION_PLACEHOLDER = "${CryptoEtlFunctionArn}"
BUCKET_PLACEHOLDER = "${BucketName}"

# stage -> the fields of the event that stage reads, besides "stage"
STAGES = {
    "extract": {"currency", "coins"},
    "transform": {"file_path", "fetch_time"},
    "load": {"bucket_name", "file_name"},
    "backfill_plan": {"prefix", "from", "to"},
}

TRANSIENT = "CryptoEtl.Transient"
NOT_RETRYABLE = {
    "CryptoEtl.BadEvent",
    "CryptoEtl.BadData",
    "CryptoEtl.PluginFailed",
    "CryptoEtl.Config",
    "CryptoEtl.Failed",
}
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
MAX_ATTEMPTS = 10

LIGHT = "crypto_etl_state_machine_light.asl.json"
BACKFILL = "crypto_etl_backfill.asl.json"

SECRET_WORDS = re.compile(r"password|passphrase|private_?key|token|api_?key|secret|credential", re.I)
# Actions of the CloudWatch Logs delivery API (state machine logging) take no resource ARN.
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


class Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.lines.append(f"{where}: {what}")

    def check(self, ok: bool, where: str, what: str) -> None:
        if not ok:
            self.add(where, what)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- state machines ----------------------------------------------------------------------------


def walk_tasks(states: dict[str, Any], inside_map: bool) -> Iterator[tuple[str, dict, bool, dict]]:
    """(name, state, inside a Map's ItemProcessor, the states it belongs to) for every Task."""
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state, inside_map, states
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from walk_tasks(state[key].get("States", {}), True)
        for branch in state.get("Branches", []):
            yield from walk_tasks(branch.get("States", {}), inside_map)


def stage_of(task: dict) -> str | None:
    payload = task.get("Parameters", {}).get("Payload", {})
    return payload.get("stage") if isinstance(payload, dict) else None


def stage_order(machine: dict) -> list[str | None]:
    """The stages of the Tasks met following Next from StartAt (for a linear machine)."""
    order, name, seen = [], machine.get("StartAt"), set()
    states = machine.get("States", {})
    while name in states and name not in seen:
        seen.add(name)
        state = states[name]
        if state.get("Type") == "Task":
            order.append(stage_of(state))
        name = state.get("Next")
    return order


def check_task(p: Problems, where: str, task: dict, inside_map: bool, states: dict) -> None:
    p.check(task.get("Resource") == "arn:aws:states:::lambda:invoke", where,
            "Resource must be arn:aws:states:::lambda:invoke")
    params = task.get("Parameters", {})
    p.check(set(params) == {"FunctionName", "Payload"}, where,
            f"Parameters must be exactly FunctionName and Payload, not {sorted(params)}")
    p.check(params.get("FunctionName") == FUNCTION_PLACEHOLDER, where,
            f"FunctionName must be {FUNCTION_PLACEHOLDER}")
    p.check(task.get("OutputPath") == "$.Payload", where,
            "OutputPath must be $.Payload (the state's output is the object the function returned)")
    p.check("ResultPath" not in task and "ResultSelector" not in task, where,
            "no ResultPath/ResultSelector: the output is the function's object alone")

    payload = params.get("Payload")
    if not isinstance(payload, dict):
        p.add(where, "Payload must be a JSON object")
        return
    stage = payload.get("stage")
    if stage not in STAGES:
        p.add(where, f"Payload.stage must be one of {sorted(STAGES)}, not {stage!r}")
        return
    fields = {k.removesuffix(".$") for k in payload if k != "stage"}
    p.check(fields == STAGES[stage], where,
            f"the {stage} event must carry exactly {sorted(STAGES[stage])}, not {sorted(fields)}")
    for key, value in payload.items():
        if key.endswith(".$"):
            field = key.removesuffix(".$")
            p.check(value == f"$.{field}", where,
                    f"Payload.{key} must select $.{field} from the state's input, not {value!r}")
        elif key != "stage":
            p.add(where, f"Payload.{key} must be selected from the input ({key}.$), not a constant")

    retriers = task.get("Retry", [])
    retried = [set(r.get("ErrorEquals", [])) for r in retriers]
    p.check({TRANSIENT} in retried, where, f"must retry {TRANSIENT} in a retrier of its own")
    p.check(any(LAMBDA_SERVICE_ERRORS <= e and TRANSIENT not in e for e in retried), where,
            f"must retry Lambda's service errors {sorted(LAMBDA_SERVICE_ERRORS)}")
    for i, retrier in enumerate(retriers):
        r_where = f"{where}, Retry[{i}]"
        errors = set(retrier.get("ErrorEquals", []))
        wrong = errors & (NOT_RETRYABLE | {"States.ALL", "States.TaskFailed", "Lambda.Unknown"})
        p.check(not wrong, r_where, f"must not retry {sorted(wrong)} (not transient)")
        unknown = {e for e in errors if e.startswith("CryptoEtl.")} - NOT_RETRYABLE - {TRANSIENT}
        p.check(not unknown, r_where, f"unknown error names {sorted(unknown)}")
        attempts = retrier.get("MaxAttempts", 3)
        p.check(isinstance(attempts, int) and 1 <= attempts <= MAX_ATTEMPTS, r_where,
                f"MaxAttempts must be 1..{MAX_ATTEMPTS}")
        p.check(retrier.get("BackoffRate", 2.0) > 1, r_where, "BackoffRate must be above 1")
        p.check(isinstance(retrier.get("MaxDelaySeconds"), int), r_where,
                "MaxDelaySeconds must bound the backoff")
        p.check(retrier.get("JitterStrategy") == "FULL", r_where, "JitterStrategy must be FULL")

    catchers = task.get("Catch", [])
    if inside_map:
        # A failed item fails its child execution; the Map counts it against the tolerated
        # failures and lists it in the FAILED results file. Nothing to catch there.
        p.check(not catchers, where, "a Map item's Task lets its error fail the item (no Catch)")
        return
    p.check(len(catchers) == 1 and catchers[0].get("ErrorEquals") == ["States.ALL"], where,
            "must Catch States.ALL (one catcher)")
    check_catcher(p, where, catchers, states)


def check_catcher(p: Problems, where: str, catchers: list, states: dict) -> None:
    for catcher in catchers:
        p.check(catcher.get("ResultPath") == "$.error", where, "Catch ResultPath must be $.error")
        target = states.get(catcher.get("Next"), {})
        p.check(target.get("Type") == "Fail", where, "Catch must lead to a Fail state")
        p.check(target.get("ErrorPath") == "$.error.Error" and target.get("CausePath") == "$.error.Cause",
                where, "the Fail state must carry ErrorPath $.error.Error and CausePath $.error.Cause")


def check_machine(p: Problems, path: Path, machine: dict, substitutions: set[str]) -> str:
    name = path.name
    text = path.read_text()
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    p.check(used == substitutions, name,
            f"placeholders {sorted(used)} must be exactly the DefinitionSubstitutions {sorted(substitutions)}")
    p.check(machine.get("QueryLanguage", "JSONPath") == "JSONPath", name, "must use JSONPath")

    tasks = list(walk_tasks(machine.get("States", {}), False))
    for task_name, task, inside_map, states in tasks:
        check_task(p, f"{name} {task_name!r}", task, inside_map, states)

    if name == LIGHT:
        p.check(stage_order(machine) == ["extract", "transform", "load"], name,
                f"must run extract -> transform -> load, runs {stage_order(machine)}")
        return "Extract -> Transform -> Load"
    if name == BACKFILL:
        p.check(stage_order(machine) == ["backfill_plan"], name, "must start with the backfill_plan Task")
        maps = [(n, s) for n, s in machine.get("States", {}).items() if s.get("Type") == "Map"]
        if len(maps) != 1:
            p.add(name, "must have one Map state")
            return ""
        map_name, m = maps[0]
        where = f"{name} {map_name!r}"
        reader = m.get("ItemReader", {})
        p.check(reader.get("Resource") == "arn:aws:states:::s3:getObject"
                and reader.get("ReaderConfig", {}).get("InputType") == "JSON", where,
                "ItemReader must read a JSON array with arn:aws:states:::s3:getObject")
        p.check(reader.get("Parameters") == {"Bucket.$": "$.bucket_name", "Key.$": "$.items_key"}, where,
                "ItemReader must read the plan's items file ($.bucket_name, $.items_key)")
        processor = m.get("ItemProcessor", {})
        p.check(processor.get("ProcessorConfig") == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                where, "ItemProcessor must be DISTRIBUTED with EXPRESS child executions")
        p.check(stage_order(processor) == ["transform", "load"], where,
                f"each item must run transform -> load, runs {stage_order(processor)}")
        concurrency = m.get("MaxConcurrency")
        p.check(isinstance(concurrency, int) and 1 <= concurrency <= 10, where,
                "MaxConcurrency must be bounded (1..10)")
        p.check("ToleratedFailurePercentage" in m or "ToleratedFailureCount" in m, where,
                "must state the tolerated failures")
        writer = m.get("ResultWriter", {})
        params = writer.get("Parameters", {})
        p.check(writer.get("Resource") == "arn:aws:states:::s3:putObject"
                and params.get("Bucket") == BUCKET_PLACEHOLDER
                and str(params.get("Prefix", "")).startswith("backfill/results"), where,
                f"ResultWriter must write to {BUCKET_PLACEHOLDER} under backfill/results")
        p.check(len(m.get("Catch", [])) == 1 and m["Catch"][0].get("ErrorEquals") == ["States.ALL"],
                where, "must Catch States.ALL (one catcher)")
        check_catcher(p, where, m.get("Catch", []), machine.get("States", {}))
        return (f"backfill_plan -> Distributed Map (EXPRESS, MaxConcurrency {concurrency}): "
                "Transform -> Load per snapshot")
    p.add(name, "unknown state machine file")
    return ""


# --- template rules ------------------------------------------------------------------------------


def iam_statements(node: Any) -> Iterator[dict]:
    """Every IAM statement in the template (objects with Effect and Action), in every branch."""
    if isinstance(node, dict):
        if node.get("Effect") in ("Allow", "Deny") and "Action" in node:
            yield node
            return
        for value in node.values():
            yield from iam_statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from iam_statements(item)


def check_template(p: Problems, template: dict) -> None:
    for name, param in template.get("Parameters", {}).items():
        p.check(not SECRET_WORDS.search(name) or name.endswith("Arn"), f"Parameters.{name}",
                "looks like a secret value: pass the ARN of a Secrets Manager secret instead")
    for name, resource in template.get("Resources", {}).items():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for var in variables:
            p.check(not SECRET_WORDS.search(var) or var.endswith("_SECRET_ARN"),
                    f"{name} environment {var}",
                    "looks like a secret value: the function must read it from Secrets Manager")
    for statement in iam_statements(template.get("Resources", {})):
        if statement.get("Effect") != "Allow":
            continue
        actions = as_list(statement.get("Action", []))
        wild = [a for a in actions if isinstance(a, str) and "*" in a]
        p.check(not wild, "IAM", f"Allow of wildcard actions {wild}")
        if "*" in as_list(statement.get("Resource", [])):
            extra = set(actions) - LOG_DELIVERY_ACTIONS
            p.check(not extra, "IAM", f"Resource \"*\" for {sorted(extra)}")


# --- plain CloudFormation for cfn-lint ------------------------------------------------------------

# AWS::Serverless::Function -> AWS::Lambda::Function: CodeUri becomes Code, the other properties
# carry over as they are (cfn-lint then refuses any that AWS::Lambda::Function lacks), except these,
# which SAM turns into other resources: give the function its own role and events instead.
FUNCTION_SAM_ONLY = {"Events", "Policies", "AutoPublishAlias", "DeploymentPreference", "FunctionUrlConfig"}
STATE_MACHINE_PROPS = {  # AWS::Serverless::StateMachine -> AWS::StepFunctions::StateMachine
    "Name": "StateMachineName", "Type": "StateMachineType", "Role": "RoleArn",
    "DefinitionSubstitutions": "DefinitionSubstitutions", "Logging": "LoggingConfiguration",
}


def derive(p: Problems, template: dict, here: Path) -> dict:
    out = json.loads(json.dumps(template))
    out.pop("Transform", None)
    resources = out["Resources"]
    for name, resource in list(resources.items()):
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            sam_only = set(props) & FUNCTION_SAM_ONLY
            p.check(not sam_only, name, f"derive: map {sorted(sam_only)} in check_deploy.py")
            resource["Type"] = "AWS::Lambda::Function"
            resource["Properties"] = {k: v for k, v in props.items() if k != "CodeUri"}
            resource["Properties"]["Code"] = {"S3Bucket": "packaged-by-sam-deploy", "S3Key": "crypto-etl.zip"}
        elif resource["Type"] == "AWS::Serverless::StateMachine":
            unknown = set(props) - set(STATE_MACHINE_PROPS) - {"DefinitionUri", "Events"}
            p.check(not unknown, name, f"derive: map {sorted(unknown)} in check_deploy.py")
            resource["Type"] = "AWS::StepFunctions::StateMachine"
            resource["Properties"] = {STATE_MACHINE_PROPS[k]: v for k, v in props.items()
                                      if k in STATE_MACHINE_PROPS}
            resource["Properties"]["Definition"] = json.loads((here / props["DefinitionUri"]).read_text())
            for event_name, event in props.get("Events", {}).items():
                derive_schedule(p, resources, name, event_name, event)
    return out


def derive_schedule(p: Problems, resources: dict, machine: str, event_name: str, event: dict) -> None:
    """A SAM Schedule event: an EventBridge rule and the role it starts the execution with."""
    where = f"{machine}.Events.{event_name}"
    props = event.get("Properties", {})
    unknown = set(props) - {"Schedule", "State", "Input", "Description"}
    p.check(event.get("Type") == "Schedule" and not unknown, where,
            f"derive: map this event ({event.get('Type')}, {sorted(unknown)}) in check_deploy.py")
    role = f"{machine}{event_name}Role"
    resources[role] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            },
            "Policies": [{
                "PolicyName": "start-execution",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "states:StartExecution",
                                   "Resource": {"Ref": machine}}],
                },
            }],
        },
    }
    target = {"Id": f"{machine}{event_name}Target", "Arn": {"Ref": machine},
              "RoleArn": {"Fn::GetAtt": [role, "Arn"]}}
    if "Input" in props:
        target["Input"] = props["Input"]
    rule = {"ScheduleExpression": props.get("Schedule"), "Targets": [target]}
    for key in ("State", "Description"):
        if key in props:
            rule[key] = props[key]
    resources[f"{machine}{event_name}"] = {"Type": "AWS::Events::Rule", "Properties": rule}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(Path(__file__).with_name("template.yaml")))
    parser.add_argument("--derived-out", help="write the plain CloudFormation template here")
    args = parser.parse_args()

    template_path = Path(args.template)
    here = template_path.parent
    template, matches = decode(str(template_path))
    if matches or template is None:
        for match in matches or []:
            print(f"{template_path}: {match}", file=sys.stderr)
        return 1

    p = Problems()
    summaries = []
    machines = {name: r for name, r in template["Resources"].items()
                if r["Type"] == "AWS::Serverless::StateMachine"}
    files = sorted(r["Properties"]["DefinitionUri"] for r in machines.values())
    p.check(files == sorted([BACKFILL, LIGHT]), str(template_path),
            f"state machines must use {LIGHT} and {BACKFILL}, found {files}")
    for name, resource in machines.items():
        props = resource["Properties"]
        path = here / props["DefinitionUri"]
        substitutions = set(props.get("DefinitionSubstitutions", {}))
        summary = check_machine(p, path, json.loads(path.read_text()), substitutions)
        summaries.append(f"{path.name} ({name}): {summary}")
    check_template(p, template)

    if args.derived_out:
        Path(args.derived_out).write_text(json.dumps(derive(p, template, here), indent=1) + "\n")

    if p.lines:
        for line in p.lines:
            print(f"contract: {line}", file=sys.stderr)
        return 1
    for summary in summaries:
        print(f"contract: {summary}: events, retries and catches as the handler expects")
    print("contract: template: no secret parameter or variable, no wildcard IAM grant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
