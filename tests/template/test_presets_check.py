"""template.yaml: the presets are checked before the submit function is given them, by a function that
is not given them."""

from __future__ import annotations

from local.template import function_specs, load_template
from upscaler.deploy_checks import PRESETS_CHECK_TYPE
from upscaler.settings import PRESETS_VARIABLE


def test_the_submit_function_depends_on_the_check_that_a_function_without_the_presets_answers():
    template = load_template()
    check = template["Resources"]["UploadPresetsCheck"]
    assert check["Type"] == PRESETS_CHECK_TYPE
    assert check["Properties"]["Presets"] == {"Ref": "UploadPresets"}
    assert check["Properties"]["InboxPrefix"] == {"Ref": "InboxPrefix"}
    assert 1 <= int(check["Properties"]["ServiceTimeout"]) <= 3600  # CloudFormation's range
    answering = check["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    specs = function_specs(template)
    assert PRESETS_VARIABLE not in specs[answering].environment
    assert template["Resources"]["SubmitFunction"]["DependsOn"] == "UploadPresetsCheck"
    assert specs["SubmitFunction"].environment[PRESETS_VARIABLE] == {"Ref": "UploadPresets"}
