"""The configuration editor: a form per model from the server's schema, the server's dry run before
a save, the diff of what a save changes, the soft restart that applies it, errors at their field
and line, the YAML tab, add, duplicate and delete."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import expect

from tests.ui.conftest import Served, claracore_serve, wait_until, write_config


def field(page: Any, path: str) -> Any:
    return page.locator(f'[data-path="{path}"]')


def config_file(served: Served) -> Path:
    return Path(served.proc.args[served.proc.args.index("--config") + 1])  # type: ignore[union-attr]


def view(page: Any, name: str) -> None:
    views = page.get_by_role("navigation", name="Configuration views")
    views.get_by_role("link", name=re.compile(f"^{name}")).click()


def review(page: Any) -> Any:
    page.get_by_role("region", name="Unsaved changes").get_by_role("button", name="Review and save").click()
    return page.get_by_role("dialog", name="Review the changes")


def test_a_change_is_checked_shown_as_a_diff_saved_and_applied(small_server: Served, page: Any) -> None:
    file = config_file(small_server)
    page.goto(small_server.url + "/ui/configuration")
    form = page.get_by_role("region", name="Model smollm2 settings")
    expect(form).to_be_visible()
    # Each key comes with its meaning and its valid range, from the server's schema.
    context = form.locator('[data-field="context_length"]')
    expect(context).to_contain_text("16 to 16,777,216")
    expect(context).to_contain_text("Tokens each sequence can hold")
    expect(field(page, "models.0.context_length")).to_have_value("2048")
    expect(form.locator('[data-field="cache_type_k"] select')).to_have_value("")  # not set: the default

    field(page, "models.0.context_length").fill("1024")
    dialog = review(page)
    expect(dialog).to_contain_text("it is valid")
    expect(dialog.locator('[data-diff="remove"]')).to_have_text(re.compile(r"context_length: 2048$"))
    expect(dialog.locator('[data-diff="add"]')).to_have_text(re.compile(r"context_length: 1024$"))
    assert yaml.safe_load(file.read_text())["models"][0]["context_length"] == 2048  # not yet
    dialog.get_by_role("button", name="Save config.yaml").click()
    expect(page.get_by_role("status", name="Saved")).to_be_visible()
    assert yaml.safe_load(file.read_text())["models"][0]["context_length"] == 1024
    assert small_server.models()["smollm2"]["context_length"] == 2048  # the running server: until a restart

    page.get_by_role("status", name="Saved").get_by_role("button", name="Soft restart now").click()
    expect(page.get_by_text(re.compile(r"Configuration reloaded \(changed: smollm2\)"))).to_be_visible()
    wait_until(lambda: small_server.models()["smollm2"]["context_length"] == 1024, 10, "the restart to apply")
    expect(page.get_by_role("region", name="Unsaved changes")).to_be_hidden()


def test_the_servers_errors_land_at_their_field_and_line(small_server: Served, page: Any) -> None:
    file = config_file(small_server)
    before = file.read_text()
    page.goto(small_server.url + "/ui/configuration")
    field(page, "models.0.temperature").fill("5")
    field(page, "models.0.parallel").fill("0")
    page.get_by_role("button", name="Review and save").click()
    temperature = page.locator('[data-field="temperature"]')
    expect(temperature.get_by_role("alert")).to_have_text(re.compile("less than or equal to 2"))
    expect(field(page, "models.0.temperature")).to_have_attribute("aria-invalid", "true")
    parallel = page.locator('[data-field="parallel"]')
    expect(parallel.get_by_role("alert")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_role("dialog", name="Review the changes")).to_be_hidden()
    assert file.read_text() == before  # nothing was written
    # The YAML tab marks the same problems at their lines.
    view(page, "YAML")
    problems = page.get_by_role("list", name="Problems")
    expect(problems).to_contain_text("models.0.temperature")
    text = page.get_by_role("textbox", name="config.yaml").input_value()
    row = next(i for i, line in enumerate(text.splitlines(), 1) if "temperature" in line)
    expect(problems).to_contain_text(f"line {row} models.0.temperature")
    # Fixing the value clears its error; a YAML mistake is caught before the server is asked.
    view(page, "Models")
    field(page, "models.0.temperature").fill("0.5")
    expect(temperature.get_by_role("alert")).to_have_count(0)
    view(page, "YAML")
    page.get_by_role("textbox", name="config.yaml").press("Control+End")
    page.get_by_role("textbox", name="config.yaml").type("\n  bad: [")
    expect(problems).to_contain_text("line")
    expect(page.get_by_role("button", name="Review and save")).to_be_disabled()


def test_add_duplicate_and_delete_models(small_server: Served, tiny_llama: Path, page: Any) -> None:
    file = config_file(small_server)
    page.goto(small_server.url + "/ui/configuration")
    listing = page.get_by_role("region", name="Configured models")
    expect(listing.get_by_role("button")).to_have_count(2)  # smollm2 and "Add model"
    listing.get_by_role("button", name="Add model").click()
    dialog = page.get_by_role("dialog", name="Add a model from a file")
    dialog.get_by_label("File or folder on the server").fill(str(tiny_llama))
    dialog.get_by_label("Name (optional)").fill("tiny")
    dialog.get_by_role("button", name="Add model").click()
    expect(page.get_by_role("region", name="Model tiny settings")).to_be_visible()
    assert [m["name"] for m in yaml.safe_load(file.read_text())["models"]] == ["smollm2", "tiny"]

    page.get_by_role("region", name="Model tiny settings").get_by_role("button", name="Duplicate").click()
    copy = page.get_by_role("region", name="Model tiny-copy settings")
    expect(copy).to_be_visible()
    listing.get_by_role("button", name=re.compile("^smollm2")).click()
    page.get_by_role("region", name="Model smollm2 settings").get_by_role("button", name="Delete").click()
    expect(listing.get_by_role("button", name=re.compile("^smollm2"))).to_have_count(0)
    dialog = review(page)
    expect(dialog.locator('[data-diff="add"]').filter(has_text="name: tiny-copy")).to_have_count(1)
    expect(dialog.locator('[data-diff="remove"]').filter(has_text="name: smollm2")).to_have_count(1)
    dialog.get_by_role("button", name="Save config.yaml").click()
    expect(page.get_by_role("status", name="Saved")).to_be_visible()
    assert [m["name"] for m in yaml.safe_load(file.read_text())["models"]] == ["tiny", "tiny-copy"]


def test_check_files_and_remove_duplicates(
    tmp_path: Path, ui_built: Path, tiny_llama: Path, page: Any
) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    shutil.copy(tiny_llama, a)
    shutil.copy(tiny_llama, b)
    entries = [
        {"name": "first", "model": str(a)},
        {"name": "again", "model": str(a)},
        {"name": "other", "model": str(b)},
    ]
    file = write_config(tmp_path / "config.yaml", entries)
    with claracore_serve(tmp_path / "home", "--config", str(file)) as served:
        page.goto(served.url + "/ui/configuration")
        listing = page.get_by_role("region", name="Configured models")
        expect(listing.get_by_role("button")).to_have_count(4)  # three models and "Add model"
        page.get_by_role("button", name="Remove duplicates").click()
        expect(page.get_by_text("Removed 1 duplicate: again")).to_be_visible()
        expect(listing.get_by_role("button", name=re.compile("^again"))).to_have_count(0)
        assert [m["name"] for m in yaml.safe_load(file.read_text())["models"]] == ["first", "other"]

        b.unlink()  # a file that went away after the config was written
        page.get_by_role("button", name="Check model files").click()
        checked = page.get_by_role("region", name="Model files")
        expect(checked).to_contain_text("1 of 2 model files usable")
        expect(checked).to_contain_text(f"other: missing {b}")
        expect(checked).not_to_contain_text("first")
