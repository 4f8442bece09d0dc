"""userppp: a userspace PPP stack for Linux in Python with a small cffi C core.

``pip install .`` or ``pip install -e .`` compiles the C core (cext/) into
``userppp._core`` with cffi in out-of-line API mode.
"""
from setuptools import find_packages, setup

setup(
    name="userppp",
    version="0.1.0",
    description="Userspace PPP stack for Linux (pppd-compatible) with a small C core",
    python_requires=">=3.11",
    packages=find_packages(include=["userppp", "userppp.*"]),
    cffi_modules=["cext/build_core.py:ffibuilder"],
    install_requires=[
        "cffi>=1.15",
        "pyserial",
        "python-pytun",
        "dpkt",
        "pycryptodome",
    ],
    # wheel: tests/e2e/test_demo.py installs a copy with pip --no-build-isolation
    extras_require={"test": ["pytest", "hypothesis", "wheel", "atheris"]},
    entry_points={"console_scripts": ["userppp = userppp.cli:main"]},
    zip_safe=False,
)
