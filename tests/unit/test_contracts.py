"""Generated code matches the protos, which pass buf lint and buf breaking.

Both the Python modules in libs/wif/v1 and the Node.js client in
clients/node/gen are compared with a fresh generation.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = REPO_ROOT / "libs" / "wif" / "v1"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "gen-protos.sh"), str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )

    fresh = sorted(p.name for p in (tmp_path / "wif" / "v1").iterdir())
    stale = [
        name
        for name in fresh
        if not filecmp.cmp(
            tmp_path / "wif" / "v1" / name, GENERATED / name, shallow=False
        )
    ]
    assert fresh, "generation produced nothing"
    assert stale == [], f"run `make gen`: stale generated files {stale}"


def test_protos_pass_buf_lint() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "node_modules" / ".bin" / "buf"), "lint"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


#: The contract as last released, made by ``make release-contract``.
RELEASED_IMAGE = REPO_ROOT / "protos" / "released.binpb"


def _buf_breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(REPO_ROOT / "node_modules" / ".bin" / "buf"),
            "breaking",
            "--against",
            str(RELEASED_IMAGE),
        ],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_protos_do_not_break_the_released_contract() -> None:
    result = _buf_breaking(REPO_ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_a_renamed_field(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO_ROOT / "protos", tmp_path / "protos")
    sts = tmp_path / "protos" / "wif" / "v1" / "sts.proto"
    text = sts.read_text()
    sts.write_text(text.replace("string subject_token = 1;", "string subject = 1;"))

    result = _buf_breaking(tmp_path)

    assert result.returncode != 0
    assert "subject_token" in result.stdout


NODE_GENERATED = REPO_ROOT / "clients" / "node" / "gen"


def test_generated_node_client_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [str(REPO_ROOT / "node_modules" / ".bin" / "buf"), "generate", "-o", tmp_path],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )

    fresh_root = tmp_path / "clients" / "node" / "gen"
    fresh = sorted(p.relative_to(fresh_root) for p in fresh_root.rglob("*.*"))
    kept = sorted(p.relative_to(NODE_GENERATED) for p in NODE_GENERATED.rglob("*.*"))
    stale = [
        str(name)
        for name in fresh
        if not (NODE_GENERATED / name).is_file()
        or not filecmp.cmp(fresh_root / name, NODE_GENERATED / name, shallow=False)
    ]
    assert fresh, "generation produced nothing"
    assert (stale, kept) == ([], fresh), "run `make gen`: the Node client is stale"
