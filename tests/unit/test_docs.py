"""The README's commands are the ones CI and the Dockerfile run: they cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_opens_with_install_and_run_then_install_and_test() -> None:
    install_run, install_test = readme_commands()[:2]
    assert install_run.startswith("pip install -c constraints.txt .") and "edgekd compress" in install_run
    assert install_test.startswith("pip install -c constraints.txt -e") and "pytest" in install_test


def test_ci_runs_the_readme_test_command() -> None:
    install_test = readme_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_test.replace("pip install", "pip install -q") in ci_lines


def dockerfile_runs(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.removeprefix("RUN ").strip() for line in lines if line.startswith("RUN ")]


def test_dockerfile_installs_like_the_readme() -> None:
    install = readme_commands()[0].split("&&")[0].strip()
    assert install in dockerfile_runs("Dockerfile")
    assert 'CMD ["compress"]' in (ROOT / "Dockerfile").read_text()


def test_gpu_dockerfile_installs_like_the_readme_plus_the_tensorrt_extra() -> None:
    install = readme_commands()[0].split("&&")[0].strip()
    assert install.endswith(" .")
    assert install.removesuffix(" .") + ' ".[tensorrt]"' in dockerfile_runs("Dockerfile.gpu")


def test_both_images_copy_the_files_a_build_needs() -> None:
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / name).read_text()
        for needed in ("pyproject.toml", "constraints.txt", "README.md", "edgekd", "pipelines", "targets"):
            assert needed in text, (name, needed)


def test_constraints_pin_torch() -> None:
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
