"""Packaging for condgan.

Runtime dependencies live here (install_requires); `pip install -e ".[dev]"`
adds the test tools. The compiled extension `condgan._C` (csrc/) is built here
only when torch is importable at build time; see condgan/ops for the
just-in-time build used otherwise.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "condgan" / "__init__.py").read_text()).group(1)


def extensions():
    """Return (ext_modules, cmdclass) for condgan._C; empty when torch is absent."""
    return [], {}


ext_modules, cmdclass = extensions()

setup(
    name="condgan",
    version=VERSION,
    description="Conditional GANs: class-conditional generation, pix2pix and CycleGAN on one training core",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["condgan", "condgan.*"]),
    package_data={"condgan": ["data/assets/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "numpy>=1.24",
        "pillow>=9.0",
        "tqdm>=4.64",
        "tensorboard>=2.14",
        "torchmetrics>=1.3",
        "ninja>=1.11",
    ],
    extras_require={
        "dev": ["pytest>=7.4", "pytest-timeout>=2.2"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={
        "console_scripts": [
            "condgan-train=condgan.train:main",
            "condgan-sample=condgan.sample:main",
            "condgan-evaluate=condgan.evaluate:main",
        ]
    },
)
