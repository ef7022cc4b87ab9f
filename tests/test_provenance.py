import subprocess
from importlib import metadata
from pathlib import Path

import jax

from aser_jax import provenance

REPO = Path(provenance.__file__).resolve().parent.parent


def test_environment_names_versions_devices_and_host():
  env = provenance.environment()
  assert env["packages"]["jax"] == jax.__version__ == metadata.version("jax")
  assert env["packages"]["numpy"] == metadata.version("numpy")
  assert env["backend"] == jax.default_backend() and env["device_count"] == jax.device_count()
  assert env["device_kind"] == jax.devices()[0].device_kind
  assert 1 <= env["host"]["usable_cores"] <= env["host"]["cpu_count"] and env["host"]["cpu"]


def test_commit_is_the_checkout_head_and_none_outside_git(tmp_path):
  env = provenance.environment()
  if (REPO / ".git").exists():  # editable install from a checkout (the test command's install)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert env["aser_jax"]["commit"] == head and isinstance(env["aser_jax"]["dirty"], bool)
  else:
    assert env["aser_jax"] is None
  assert provenance._git(tmp_path) is None
  (tmp_path / ".git").mkdir()  # looks like a checkout but git cannot read it
  assert provenance._git(tmp_path) is None


def test_an_unknown_package_has_no_version():
  assert provenance._version("surely-not-an-installed-package-xyz") is None
