"""docs/architecture.md and the README's layout table name what is in the tree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules(package: str) -> list[str]:
    return sorted(path.name for path in (ROOT / package).glob("*.py")
                  if path.name not in ("__init__.py", "__main__.py"))


def test_the_architecture_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("server", "server/http", "server/remote", "server/jobs",
                    "server/outbound", "server/cli", "agent"):
        section = text.split(f"**`{package}/`", 1)
        assert len(section) == 2, f"no paragraph for {package}/"
        paragraph = section[1].split("\n\n", 1)[0]
        missing = [name for name in modules(package) if f"`{name}`" not in paragraph]
        assert missing == [], f"{package}/: {missing} are not described"


def test_the_readme_layout_lists_every_package() -> None:
    table = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    packages = sorted(str(path.parent.relative_to(ROOT)) for path in
                      (ROOT / "server").glob("*/__init__.py"))
    for package in ["server", *packages, "agent", "web", "tests", "docs", "bench"]:
        assert f"| `{package}/` |" in table, package
