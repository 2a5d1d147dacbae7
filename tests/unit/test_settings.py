"""Settings from the environment the template sets: defaults, overrides, and refusal of bad values."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from local.template import function_specs, load_template
from upscaler.models import UpscaleOptions
from upscaler.settings import OPTION, VARIABLES, ConfigurationError, Settings, get_settings, read_secret
from upscaler.settings import REQUIRED as MUST_BE_SET

REQUIRED = {
    "JOBS_TABLE": "jobs",
    "OUTPUT_BUCKET": "out-bucket",
    "RUNWARE_API_KEY_SECRET": "runware-key-secret",
    "WEBHOOK_TOKEN_SECRET": "webhook-key-secret",
}


def test_defaults_with_only_the_required_variables():
    settings = Settings.from_environment(dict(REQUIRED))
    assert settings == Settings(
        jobs_table="jobs",
        output_bucket="out-bucket",
        runware_api_url="https://api.runware.ai/v1",
        runware_api_key_secret="runware-key-secret",
        webhook_token_secret="webhook-key-secret",
    )
    assert settings.inbox_prefix == "inbox/"
    assert settings.output_prefix == "upscaled/"
    assert settings.webhook_url == ""
    assert settings.defaults == UpscaleOptions(4, False, False, "JPG", 95)
    assert settings.max_input_bytes == 50 * 1024 * 1024
    assert settings.presigned_url_expiry_seconds == 2700
    assert settings.runware_result_ttl_seconds == 3600
    assert settings.job_retention_days == 90
    assert settings.reconcile_after_seconds == 600
    assert settings.job_max_age_seconds == 4 * 3600
    assert settings.reconcile_max_jobs == 200
    assert settings.runware_timeout_seconds == 20.0
    assert settings.runware_max_attempts == 5


def test_every_override_from_the_environment():
    env = {
        **REQUIRED,
        "RUNWARE_API_URL": " http://127.0.0.1:9000/v1 ",
        "INBOX_PREFIX": "drop/",
        "OUTPUT_PREFIX": "big/",
        "WEBHOOK_URL": "https://abc.execute-api.eu-west-1.amazonaws.com/webhook",
        "DEFAULT_TARGET_MEGAPIXELS": "8",
        "DEFAULT_ENHANCE_DETAILS": "true",
        "DEFAULT_REALISM": "1",
        "DEFAULT_OUTPUT_FORMAT": "png",
        "DEFAULT_OUTPUT_QUALITY": "85",
        "MAX_INPUT_BYTES": "1048576",
        "PRESIGNED_URL_EXPIRY_SECONDS": "7200",
        "RUNWARE_RESULT_TTL_SECONDS": "3600",
        "JOB_RETENTION_DAYS": "30",
        "RECONCILE_AFTER_SECONDS": "300",
        "JOB_MAX_AGE_SECONDS": "86400",
        "RECONCILE_MAX_JOBS": "50",
        "RUNWARE_MAX_ATTEMPTS": "3",
        "SUBMIT_PARALLELISM": "4",
    }
    settings = Settings.from_environment(env)
    assert settings.runware_api_url == "http://127.0.0.1:9000/v1"
    assert settings.inbox_prefix == "drop/"
    assert settings.output_prefix == "big/"
    assert settings.webhook_url == "https://abc.execute-api.eu-west-1.amazonaws.com/webhook"
    assert settings.defaults == UpscaleOptions(8, True, True, "PNG", 85)
    assert settings.max_input_bytes == 1048576
    assert settings.presigned_url_expiry_seconds == 7200
    assert settings.runware_result_ttl_seconds == 3600
    assert settings.job_retention_days == 30
    assert settings.reconcile_after_seconds == 300
    assert settings.job_max_age_seconds == 86400
    assert settings.reconcile_max_jobs == 50
    assert settings.runware_max_attempts == 3
    assert settings.submit_parallelism == 4


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_submit_parallelism_below_one_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError, match="SUBMIT_PARALLELISM"):
        Settings.from_environment({**REQUIRED, "SUBMIT_PARALLELISM": value})


def test_blank_optional_values_fall_back_to_defaults():
    env = {**REQUIRED, "MAX_INPUT_BYTES": "  ", "DEFAULT_REALISM": "", "RUNWARE_API_URL": ""}
    settings = Settings.from_environment(env)
    assert settings.max_input_bytes == 50 * 1024 * 1024
    assert settings.defaults.realism is False
    assert settings.runware_api_url == "https://api.runware.ai/v1"


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_required_variable_is_a_configuration_error(name, value):
    env = dict(REQUIRED)
    if value is None:
        del env[name]
    else:
        env[name] = value
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environment(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_INPUT_BYTES", "50MB"),
        ("MAX_INPUT_BYTES", "1.5"),
        ("PRESIGNED_URL_EXPIRY_SECONDS", "three hours"),
        ("RUNWARE_RESULT_TTL_SECONDS", "10m"),
        ("JOB_RETENTION_DAYS", "x"),
        ("RECONCILE_AFTER_SECONDS", "5.0"),
        ("JOB_MAX_AGE_SECONDS", "1e4"),
        ("RECONCILE_MAX_JOBS", "many"),
        ("RUNWARE_MAX_ATTEMPTS", "five"),
        ("SUBMIT_PARALLELISM", "ten"),
        ("DEFAULT_TARGET_MEGAPIXELS", "four"),
        ("DEFAULT_OUTPUT_QUALITY", "high"),
    ],
)
def test_non_integer_values_are_configuration_errors(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environment({**REQUIRED, name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEFAULT_TARGET_MEGAPIXELS", "9"),
        ("DEFAULT_TARGET_MEGAPIXELS", "0"),
        ("DEFAULT_OUTPUT_QUALITY", "10"),
        ("DEFAULT_OUTPUT_QUALITY", "100"),
        ("DEFAULT_OUTPUT_FORMAT", "GIF"),
        ("DEFAULT_ENHANCE_DETAILS", "maybe"),
        ("DEFAULT_REALISM", "sometimes"),
    ],
)
def test_invalid_default_options_are_configuration_errors(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environment({**REQUIRED, name: value})


def test_configuration_error_is_not_a_value_error():
    # Job-level validation catches ValueError; a broken deployment must not be mistaken for bad input.
    assert not issubclass(ConfigurationError, ValueError)


def test_settings_are_immutable():
    settings = Settings.from_environment(dict(REQUIRED))
    with pytest.raises(AttributeError):
        settings.max_input_bytes = 1  # type: ignore[misc]


def test_get_settings_reads_the_process_environment_once(monkeypatch):
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_INPUT_BYTES", "1234")
    get_settings.cache_clear()
    try:
        first = get_settings()
        monkeypatch.setenv("MAX_INPUT_BYTES", "999")
        assert get_settings() is first
        assert first.max_input_bytes == 1234
    finally:
        get_settings.cache_clear()


def test_read_secret_from_secrets_manager_and_cached(aws):
    assert read_secret("runware-api-key") == "test-runware-key"
    aws.secrets.put_secret_value(SecretId="runware-api-key", SecretString="rotated")
    assert read_secret("runware-api-key") == "test-runware-key"  # cached for the container


def test_blank_secret_is_a_configuration_error(aws):
    aws.secrets.create_secret(Name="blank-secret", SecretString="   ")
    with pytest.raises(ConfigurationError, match="blank-secret"):
        read_secret("blank-secret")


def test_secret_value_is_stripped(aws):
    aws.secrets.create_secret(Name="padded-secret", SecretString="  value-with-newline\n")
    assert read_secret("padded-secret") == "value-with-newline"


def test_placeholder_runware_key_is_a_configuration_error(aws):
    from upscaler.settings import RUNWARE_KEY_PLACEHOLDER, ConfigurationError, read_runware_api_key

    aws.secrets.put_secret_value(SecretId="runware-api-key", SecretString=RUNWARE_KEY_PLACEHOLDER)
    with pytest.raises(ConfigurationError, match="placeholder"):
        read_runware_api_key("runware-api-key")


def test_real_runware_key_is_returned(aws):
    from upscaler.settings import read_runware_api_key

    assert read_runware_api_key("runware-api-key") == "test-runware-key"


def test_jpeg_is_accepted_as_the_default_output_format(environment, monkeypatch):
    monkeypatch.setenv("DEFAULT_OUTPUT_FORMAT", "jpeg")
    assert Settings.from_environment().defaults.output_format == "JPG"


def test_submitter_refuses_to_start_without_a_webhook_url(aws):
    from dataclasses import replace

    from upscaler.wiring import build_submitter

    with pytest.raises(ConfigurationError, match="WEBHOOK_URL"):
        build_submitter(replace(aws.settings, webhook_url=""))


# The table of environment variables: what the template sets, what Settings holds, what a bad value says.

TABLE = {variable.name: variable for variable in VARIABLES}
TEMPLATE_ENVIRONMENT = {
    function: {name for name in spec.environment if not name.startswith("POWERTOOLS_")}
    for function, spec in function_specs(load_template()).items()
}


def test_the_table_names_each_variable_once():
    assert len(TABLE) == len(VARIABLES)
    assert len({variable.field for variable in VARIABLES}) == len(VARIABLES)


@pytest.mark.parametrize("function", sorted(TEMPLATE_ENVIRONMENT))
def test_every_variable_the_template_sets_is_in_the_table(function):
    # Powertools reads its own variables; every other one the template sets is a setting.
    assert TEMPLATE_ENVIRONMENT[function], f"{function} sets no variables"
    missing = TEMPLATE_ENVIRONMENT[function] - TABLE.keys()
    assert not missing, f"{function} sets {sorted(missing)}, which the settings table does not read"


def test_the_variables_the_template_never_sets_are_the_optional_ones():
    set_by_template = set().union(*TEMPLATE_ENVIRONMENT.values())
    assert TABLE.keys() - set_by_template == Settings.OPTIONAL_VARIABLES


def field_default(cls: type, name: str) -> object:
    [found] = [f for f in fields(cls) if f.name == name]
    if found.default_factory is not MISSING:
        return found.default_factory()
    return MUST_BE_SET if found.default is MISSING else found.default


def test_the_table_fills_every_field_with_its_declared_default():
    # runware_timeout_seconds is no variable; defaults is filled option by option.
    settings_fields = {f.name for f in fields(Settings)} - {"runware_timeout_seconds", "defaults"}
    option_fields = {OPTION + f.name for f in fields(UpscaleOptions)}
    assert {variable.field for variable in VARIABLES} == settings_fields | option_fields
    for variable in VARIABLES:
        if variable.field.startswith(OPTION):
            declared = field_default(UpscaleOptions, variable.field.removeprefix(OPTION))
        elif variable.name == "RUNWARE_API_URL":
            declared = "https://api.runware.ai/v1"  # the one required field with a default when unset
        else:
            declared = field_default(Settings, variable.field)
        assert variable.default == declared, variable.name


class RecordingEnvironment(dict[str, str]):
    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_the_environment_is_read_only_through_the_table():
    environment = RecordingEnvironment(dict(REQUIRED))
    Settings.from_environment(environment)
    assert environment.read == TABLE.keys()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MAX_INPUT_BYTES", "50MB", "expected an integer"),
        ("SUBMIT_PARALLELISM", "0", "at least 1"),
        ("RUNWARE_REQUESTS_PER_SECOND", "fast", "expected a number"),
        ("RUNWARE_REQUESTS_PER_SECOND", "-1", "finite number >= 0"),
        ("RUNWARE_REQUESTS_PER_SECOND", "inf", "finite number >= 0"),
        ("DEFAULT_OUTPUT_FORMAT", "GIF", "JPG, PNG, WEBP"),
        ("DEFAULT_OUTPUT_FORMAT", " ", "JPG, PNG, WEBP"),
        ("DEFAULT_TARGET_MEGAPIXELS", "9", "from 1 to 8"),
        ("DEFAULT_OUTPUT_QUALITY", "100", "from 20 to 99"),
        ("DEFAULT_REALISM", "sometimes", "true or false"),
    ],
)
def test_a_bad_value_is_named_with_what_was_expected(name, value, expected):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environment({**REQUIRED, name: value})
    message = str(raised.value)
    assert f"{name}={value!r}" in message
    assert expected in message


def test_every_problem_is_reported_at_once():
    env = {
        **REQUIRED,
        "JOBS_TABLE": " ",
        "MAX_INPUT_BYTES": "50MB",
        "DEFAULT_OUTPUT_FORMAT": "GIF",
        "DEFAULT_REALISM": "maybe",
        "SUBMIT_PARALLELISM": "0",
    }
    del env["WEBHOOK_TOKEN_SECRET"]
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environment(env)
    message = str(raised.value)
    assert message.startswith("6 environment variables are unset or invalid: ")
    for problem in (
        "JOBS_TABLE is not set",
        "WEBHOOK_TOKEN_SECRET is not set",
        "MAX_INPUT_BYTES='50MB'",
        "DEFAULT_OUTPUT_FORMAT='GIF'",
        "DEFAULT_REALISM='maybe'",
        "SUBMIT_PARALLELISM='0'",
    ):
        assert problem in message


def test_a_blank_prefix_is_a_value_not_the_default():
    settings = Settings.from_environment({**REQUIRED, "INBOX_PREFIX": "", "OUTPUT_PREFIX": ""})
    assert (settings.inbox_prefix, settings.output_prefix) == ("", "")
    assert Settings.from_environment(dict(REQUIRED)).inbox_prefix == "inbox/"


@pytest.mark.parametrize(("value", "senders"), [("0", 1), ("-2", 1), ("3", 3)])
def test_fewer_than_one_concurrent_sender_counts_as_one(value, senders):
    env = {**REQUIRED, "RUNWARE_CONCURRENT_SENDERS": value}
    assert Settings.from_environment(env).runware_concurrent_senders == senders
