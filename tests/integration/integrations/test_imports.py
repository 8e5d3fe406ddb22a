"""Each integration imports only where its framework is installed, else names the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKED = '''
import sys
sys.modules[{module!r}] = None  # as if {module} were not installed
import notebench.integrations  # the package itself needs no framework
try:
    import notebench.integrations.{integration}
except ImportError as error:
    print("ImportError:", error)
else:
    print("imported")
'''


@pytest.mark.parametrize(("integration", "module", "extra"), [
    ("lightning", "lightning", "lightning"), ("huggingface", "transformers", "huggingface")])
def test_an_integration_without_its_framework_names_the_extra(integration, module, extra):
    code = BLOCKED.format(module=module, integration=integration)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.startswith("ImportError:"), out
    assert f"pip install 'notebench[{extra}]'" in out and f"'{module}'" in out


@pytest.mark.parametrize(("integration", "module"), [
    ("lightning", "lightning"), ("huggingface", "transformers")])
def test_an_integration_imports_where_its_framework_is_installed(integration, module):
    pytest.importorskip(module)
    code = f"import notebench.integrations.{integration} as m; print(m.NotebenchCallback)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "NotebenchCallback" in out
