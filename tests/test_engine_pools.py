"""Blocking work has owners: the Engine builds every pool of a server (and stops them with it), the
command line one set per command; no module builds a pool when it is imported, and nothing hands
work to asyncio's default executor, whose threads nobody sizes or shuts down."""

from __future__ import annotations

import ast
from pathlib import Path

from app.blocking import BlockingPool
from app.jobs.wiring import Engine
from app.sources.booru.files import ImagePools
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "app").rglob("*.py"), *(REPO / "jmbooru").rglob("*.py")])


def _engine_pools(engine: Engine) -> dict[str, BlockingPool]:
    pools: dict[str, BlockingPool] = {}
    for name, value in vars(engine).items():
        if isinstance(value, BlockingPool):
            pools[name] = value
        elif isinstance(value, ImagePools):
            pools[f"{name}.files"], pools[f"{name}.measure"] = value.files, value.measure
    return pools


async def test_the_engine_holds_every_pool_and_stops_them_when_it_stops(tmp_path: Path) -> None:
    engine = Engine(make_settings(tmp_path / "data"))
    pools = _engine_pools(engine)
    assert {"files_pool", "folders_pool", "image_pools.files", "image_pools.measure", "opds_pool"} <= set(pools)
    # The booru images' pools keep their sizes: four writers, two measurers (files.py says why apart).
    assert (pools["image_pools.files"].max_workers, pools["image_pools.measure"].max_workers) == (4, 2)
    await engine.start()
    try:
        for pool in pools.values():
            assert await pool.run(int, "7") == 7
    finally:
        await engine.stop()
    still_running = []
    for name, pool in pools.items():
        try:
            await pool.run(int, "7")
        except RuntimeError as exc:  # "cannot schedule new futures after shutdown"
            assert "shutdown" in str(exc)
            continue
        still_running.append(name)
    assert still_running == []


def _module_level_calls(tree: ast.Module) -> list[ast.Call]:
    """Calls made when the module is imported (not inside a function or a lambda)."""
    found: list[ast.Call] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.Call):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def test_no_pool_is_built_at_import_and_no_work_goes_to_the_default_executor() -> None:
    at_import, default_executor = [], []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(REPO)
        at_import += [f"{where}:{c.lineno}" for c in _module_level_calls(tree)
                      if _name(c) in ("BlockingPool", "ThreadPoolExecutor")]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (
                    (_name(node) == "to_thread" and isinstance(node.func, ast.Attribute)
                     and isinstance(node.func.value, ast.Name) and node.func.value.id == "asyncio")
                    or (_name(node) == "run_in_executor" and node.args
                        and isinstance(node.args[0], ast.Constant) and node.args[0].value is None)):
                default_executor.append(f"{where}:{node.lineno}")
    assert SOURCES and at_import == [] and default_executor == []
