"""The public API is what `__all__` says, and every name in it exists."""

import claracore

EXPECTED = {
    "AsyncEngine",
    "ClaraCoreError",
    "Config",
    "ConfigError",
    "ContextLengthExceededError",
    "Engine",
    "EngineClosedError",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "MemoryBudget",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelUnavailableError",
    "__version__",
    "load_config",
    "save_config",
}


def test_all_is_the_public_api() -> None:
    assert set(claracore.__all__) == EXPECTED
    for name in claracore.__all__:
        assert hasattr(claracore, name), name


def test_errors_carry_stable_codes() -> None:
    codes = {getattr(claracore, n).code for n in claracore.__all__ if n.endswith("Error")}
    assert (
        "MODEL_NOT_FOUND" in codes and "INSUFFICIENT_MEMORY" in codes and "CONTEXT_LENGTH_EXCEEDED" in codes
    )
