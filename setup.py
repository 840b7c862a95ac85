"""The one import package, ``mmlw``, is laid out in three top-level folders (a PEP 420
namespace): ``backend/mmlw`` (core, API, CLI), ``workers/mmlw/workers`` (worker, ingest,
simulator) and ``frontend/mmlw/frontend`` (dashboard). pyproject.toml holds everything
else; this file only maps each package to its folder, which pyproject's ``find`` cannot
do for one namespace spread over several folders."""

from setuptools import find_namespace_packages, setup

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ("backend", "workers", "frontend"):
    for package in find_namespace_packages(root, include=["mmlw*"]):
        if package not in package_dir:
            packages.append(package)
            package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
